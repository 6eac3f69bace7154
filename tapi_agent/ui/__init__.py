"""Qt front end: the tray, screen pops and dialogs. Qt lives only here (DESIGN.md section 3).

Importing any of it first stops PySide6's feature hook from keeping the source of every module
imported after Qt (`feature_scan`): whichever `tapi_agent.ui` module loads Qt first (the log's
Qt message handler does, before the application exists), the fix is already in place.
"""

from tapi_agent.ui.feature_scan import skip_feature_source_scan

skip_feature_source_scan()
