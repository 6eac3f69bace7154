"""`$BROWSER` for tests: signs in on the test OpenID provider (tests/oidc/provider.mjs).

    BROWSER="/path/to/python tests/oidc/browser.py --login JAS %s" tapi-agent ...

Python's `webbrowser` runs `$BROWSER` with the URL in place of `%s` (or appended) and waits for
the command to exit: this one plays the system browser with `tests.oidc_provider.OidcBrowser`
(login page, consent page, end_session confirmation; it stops at the app's loopback redirect,
which it requests exactly once) and exits 0 once the flow has run, 1 when it broke. A browser
keeps its cookies between windows: `--cookie-jar FILE` keeps them between runs, so a later
end_session (or prompt=none) URL finds the provider session the sign-in left. `--record FILE`
appends one JSON line per run (URL opened, steps, pages, callbacks) for a test to assert on.
"""

from __future__ import annotations

import argparse
import dataclasses
import http.cookiejar
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repo, for `tests.*`

from tests.oidc_provider import OidcBrowser


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--login", default="JAS", help="login name typed on the login page "
                        "(JAS, RPT, nobody, or any other: a negotiator of that id)")
    parser.add_argument("--deny", action="store_true", help="cancel the consent page")
    parser.add_argument("--stay-signed-in", action="store_true",
                        help='answer "No, stay signed in" on the end_session page')
    parser.add_argument("--cookie-jar", type=Path, help="keep cookies in this file across runs")
    parser.add_argument("--record", type=Path, help="append a JSON line about the run here")
    parser.add_argument("url")
    args = parser.parse_args(argv)

    jar: http.cookiejar.LWPCookieJar | None = None
    if args.cookie_jar:
        jar = http.cookiejar.LWPCookieJar(str(args.cookie_jar))
        if args.cookie_jar.exists():
            jar.load(ignore_discard=True, ignore_expires=True)
    browser = OidcBrowser(args.login, consent=not args.deny, sign_out=not args.stay_signed_in,
                          cookies=jar)
    error = ""
    try:
        browser(args.url)
    except Exception as exc:  # a broken flow is reported, as a browser would show it
        error = f"{type(exc).__name__}: {exc}"
    finally:
        if jar is not None:
            jar.save(ignore_discard=True, ignore_expires=True)
        browser.close()
    if args.record:
        line = {
            "opened": args.url, "login": args.login, "error": error,
            "steps": [dataclasses.asdict(s) for s in browser.steps],
            "pages": [{"url": p.url, "status": p.status, "action": p.action}
                      for p in browser.pages],
            "callbacks": [dataclasses.asdict(c) | {"params": c.params}
                          for c in browser.callbacks],
        }
        with args.record.open("a", encoding="utf-8") as out:
            out.write(json.dumps(line) + "\n")
    if error:
        print(f"browser.py: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
