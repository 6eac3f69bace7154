"""Pure logic: call correlation, missed calls, backoff, clocks. No Qt, no sockets, no threads."""
