"""Qt front end: the tray, screen pops and dialogs. Qt lives only here (DESIGN.md section 3)."""
