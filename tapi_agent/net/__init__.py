"""Network shell: the websocket stream, the HTTP API client, Reapit Connect sign-in, token store."""
