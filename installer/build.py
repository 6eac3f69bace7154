"""Build the frozen agent with PyInstaller, then the MSI (WiX 3 on Windows, wixl on Linux).

    python installer/build.py --toolset wix     # on Windows: the real package, with WiX 3
                                                # dist/tapi-agent/ and dist/TapiAgent-<v>-x64.msi
    python installer/build.py                   # on Linux: a TEST build, see below
    python installer/build.py --bundle DIR      # MSI only, from an existing onedir bundle
    python installer/build.py --skip-msi        # frozen app only
    python installer/build.py --version 0.1.1   # a version of your own (tests, hotfix builds)

The version comes from versioninfo.build_version: a release tag vX.Y.Z, or the package version
plus the commit count, so that every build has its own.

On Linux (wixl) the MSI carries the Linux bundle as a stand-in payload (its ELF executables are
named tapi-agent.exe / tapi-agent-cli.exe inside the MSI) so that the package itself, its tables
and its logic, can be built, read and installed with Wine's msiexec here. It cannot run on
Windows, so it never looks like the real one: the file is TapiAgent-<v>-x64-LINUX-TEST.msi, the
product is "TAPI Agent (Linux test build)", and the build says so in a warning.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import quoteattr

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))
import versioninfo  # noqa: E402

SPEC = HERE / "tapi-agent.spec"
WXS = HERE / "tapi-agent.wxs"
ICON = ROOT / "resources" / "app-icon.ico"
WIX_NS = "{http://schemas.microsoft.com/wix/2006/wi}"
# The executables at the bundle's root and their File Ids (the .wxs refers to tapi-agent.exe).
EXECUTABLES = {"tapi-agent.exe": "TapiAgentExe", "tapi-agent-cli.exe": "TapiAgentCliExe"}
TRANSITIVE = 0x40  # msidbComponentAttributesTransitive: re-evaluate the condition on repair
VERSION_MAX_INCLUSIVE = 0x200  # msidbUpgradeAttributesVersionMaxInclusive
PRODUCT_NAME = versioninfo.PRODUCT_NAME
TEST_PRODUCT_NAME = f"{PRODUCT_NAME} (Linux test build)"
LINUX_TEST_WARNING = (
    "WARNING: this MSI is a Linux TEST build: its payload is the Linux bundle, which cannot run on "
    "Windows. It exists to test the package (tables, Wine's msiexec). Build the real package on "
    "Windows: python installer/build.py --toolset wix (docs/IT-DEPLOYMENT.md).")


@dataclass(frozen=True)
class ArpInfo:
    """What Add/Remove Programs shows about the product (empty: left out)."""

    help_url: str = ""
    about_url: str = ""
    contact: str = versioninfo.COMPANY_NAME

    @classmethod
    def default(cls) -> ArpInfo:
        """About = the repository's web address (git remote origin), help = its IT guide."""
        about = _web_url(_git_origin())
        return cls(help_url=f"{about}/blob/main/docs/IT-DEPLOYMENT.md" if about else "",
                   about_url=about)


def _git_origin() -> str:
    result = subprocess.run(["git", "-C", str(ROOT), "remote", "get-url", "origin"],
                            capture_output=True, text=True, check=False)
    return result.stdout.strip() if result.returncode == 0 else ""


def _web_url(remote: str) -> str:
    """`git@host:owner/repo.git` or `https://host/owner/repo.git` -> `https://host/owner/repo`."""
    match = re.fullmatch(r"(?:https://|git@|ssh://git@)([\w.-]+)[:/]([\w./-]+?)(?:\.git)?/?",
                         remote)
    return f"https://{match.group(1)}/{match.group(2)}" if match else ""


def msi_file_name(version: str, toolset: str) -> str:
    """`TapiAgent-<v>-x64.msi` for the real package; the Linux test build says what it is."""
    suffix = "" if toolset == "wix" else "-LINUX-TEST"
    return f"TapiAgent-{version}-x64{suffix}.msi"


def _wix_defines(version: str, product_name: str, arp: ArpInfo) -> dict[str, str]:
    return {"Version": versioninfo.msi_version(version), "ProductName": product_name,
            "HelpUrl": arp.help_url, "AboutUrl": arp.about_url, "Contact": arp.contact}


class BuildError(RuntimeError):
    """A build step failed; the message says which and why."""


def _run(cmd: Sequence[str], **kwargs: object) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    result = subprocess.run(list(cmd), check=False, **kwargs)  # type: ignore[call-overload]
    if result.returncode != 0:
        raise BuildError(f"{cmd[0]} failed with exit code {result.returncode}")


def _tool(name: str) -> str:
    path = shutil.which(name)
    if not path:
        raise BuildError(f"{name} is not installed (Debian: apt-get install wixl msitools)")
    return path


def build_bundle(dist: Path, work: Path) -> Path:
    """Run PyInstaller on the spec; return the onedir folder."""
    _run([sys.executable, "-m", "PyInstaller", "--noconfirm", "--log-level", "WARN",
          "--distpath", str(dist), "--workpath", str(work), str(SPEC)])
    bundle = dist / "tapi-agent"
    if not bundle.is_dir():
        raise BuildError(f"PyInstaller did not produce {bundle}")
    return bundle


def _ident(prefix: str, rel: str) -> str:
    # MSI identifiers: at most 72 characters, letters/digits/_/. -- a hash of the path fits.
    return prefix + hashlib.sha1(rel.encode("utf-8")).hexdigest()[:32].upper()


@dataclass(frozen=True)
class BundleFile:
    """One file of the bundle: where it is on disk and its name inside the MSI."""

    source: Path
    rel_dir: str  # folder below INSTALLFOLDER, "" for the root, "/" separated
    name: str  # file name inside the MSI


def bundle_files(bundle: Path) -> list[BundleFile]:
    """Every file of the bundle, sorted; executables at the root get their Windows names."""
    out: list[BundleFile] = []
    for dirpath, dirnames, filenames in os.walk(bundle, followlinks=True):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(bundle).as_posix()
        rel_dir = "" if rel_dir == "." else rel_dir
        for name in sorted(filenames):
            source = Path(dirpath) / name
            if not source.is_file():  # a dangling link
                continue
            msi_name = name
            if rel_dir == "" and name + ".exe" in EXECUTABLES:
                msi_name = name + ".exe"  # the Linux stand-in for the Windows executable
            out.append(BundleFile(source, rel_dir, msi_name))
    if not any(f.rel_dir == "" and f.name == "tapi-agent.exe" for f in out):
        raise BuildError(f"{bundle} has no tapi-agent executable at its root")
    return out


def files_fragment(files: Sequence[BundleFile]) -> str:
    """A WiX fragment installing `files` under INSTALLFOLDER (ComponentGroup BundleFiles)."""
    tree: dict[str, list[BundleFile]] = {}
    for f in files:
        tree.setdefault(f.rel_dir, []).append(f)
    dirs = sorted(set(tree) | {p for d in tree for p in _parents(d)})
    lines = ['<?xml version="1.0" encoding="utf-8"?>',
             "<!-- Generated by installer/build.py from the PyInstaller bundle. -->",
             '<Wix xmlns="http://schemas.microsoft.com/wix/2006/wi">', "  <Fragment>"]
    components: list[str] = []

    def emit(rel_dir: str, depth: int) -> None:
        pad = "  " * depth
        for f in tree.get(rel_dir, []):
            rel = f"{rel_dir}/{f.name}" if rel_dir else f.name
            comp = _ident("c", rel)
            file_id = EXECUTABLES.get(f.name, _ident("f", rel)) if not rel_dir else _ident("f", rel)
            components.append(comp)
            lines.append(f'{pad}<Component Id="{comp}" Guid="*" Win64="yes">')
            lines.append(f'{pad}  <File Id="{file_id}" Name={quoteattr(f.name)} '
                         f'Source={quoteattr(str(f.source))} KeyPath="yes"/>')
            lines.append(f"{pad}</Component>")
        for child in dirs:
            if child and _parent(child) == rel_dir:
                name = child.rsplit("/", 1)[-1]
                lines.append(f'{pad}<Directory Id="{_ident("d", child)}" Name={quoteattr(name)}>')
                emit(child, depth + 1)
                lines.append(f"{pad}</Directory>")

    lines.append('    <DirectoryRef Id="INSTALLFOLDER">')
    emit("", 3)
    lines += ["    </DirectoryRef>", "  </Fragment>", "  <Fragment>",
              '    <ComponentGroup Id="BundleFiles">']
    lines += [f'      <ComponentRef Id="{c}"/>' for c in components]
    lines += ["    </ComponentGroup>", "  </Fragment>", "</Wix>", ""]
    return "\n".join(lines)


def _parent(rel_dir: str) -> str:
    return rel_dir.rsplit("/", 1)[0] if "/" in rel_dir else ""


def _parents(rel_dir: str) -> list[str]:
    out = []
    while rel_dir:
        rel_dir = _parent(rel_dir)
        out.append(rel_dir)
    return out


def component_conditions(wxs: Path = WXS) -> dict[str, tuple[str, bool]]:
    """`{component id: (condition, transitive)}` as written for WiX in the .wxs."""
    root = ET.parse(wxs).getroot()  # the <?if?> processing instructions are dropped here
    out: dict[str, tuple[str, bool]] = {}
    for comp in root.iter(f"{WIX_NS}Component"):
        cond = comp.find(f"{WIX_NS}Condition")
        if cond is not None and cond.text:
            out[comp.attrib["Id"]] = (cond.text.strip(), comp.get("Transitive") == "yes")
    return out


def secure_properties(wxs: Path = WXS) -> list[str]:
    """Properties marked Secure="yes" in the .wxs (passed from the UI to the elevated install)."""
    root = ET.parse(wxs).getroot()
    return [p.attrib["Id"] for p in root.iter(f"{WIX_NS}Property") if p.get("Secure") == "yes"]


def _sql_string(value: str) -> str:
    if "'" in value:
        raise BuildError(f"cannot quote {value!r} for MSI SQL")
    return f"'{value}'"


def apply_component_conditions(msi: Path, conditions: dict[str, tuple[str, bool]]) -> None:
    """Write the Component conditions wixl cannot author into the built MSI (msibuild SQL)."""
    msibuild = _tool("msibuild")
    attributes = {row[0]: int(row[3]) for row in export_table(msi, "Component")}
    for comp, (cond, transitive) in sorted(conditions.items()):
        if comp not in attributes:
            raise BuildError(f"component {comp} is not in {msi}")
        attrs = attributes[comp] | (TRANSITIVE if transitive else 0)
        _run([msibuild, str(msi), "-q",
              f"UPDATE `Component` SET `Condition` = {_sql_string(cond)}, `Attributes` = {attrs} "
              f"WHERE `Component` = {_sql_string(comp)}"])


def apply_secure_properties(msi: Path, names: Sequence[str]) -> None:
    """Add `names` to SecureCustomProperties (wixl ignores Property/@Secure)."""
    current = {row[0]: row[1] for row in export_table(msi, "Property")}
    merged = [p for p in current.get("SecureCustomProperties", "").split(";") if p]
    merged += [n for n in names if n not in merged]
    value = _sql_string(";".join(merged))
    query = (f"UPDATE `Property` SET `Value` = {value} "
             "WHERE `Property` = 'SecureCustomProperties'" if "SecureCustomProperties" in current
             else f"INSERT INTO `Property` (`Property`, `Value`) "
                  f"VALUES ('SecureCustomProperties', {value})")
    _run([_tool("msibuild"), str(msi), "-q", query])


def same_version_upgrades(wxs: Path = WXS) -> bool:
    """Whether the .wxs lets a rebuild of the same version replace the installed one."""
    root = ET.parse(wxs).getroot()
    return any(m.get("AllowSameVersionUpgrades") == "yes"
               for m in root.iter(f"{WIX_NS}MajorUpgrade"))


def force_deleted_keys(wxs: Path = WXS) -> list[tuple[str, str]]:
    """`(component id, HKLM key)` of each RegistryKey ForceDeleteOnUninstall in the .wxs."""
    root = ET.parse(wxs).getroot()
    out = []
    for comp in root.iter(f"{WIX_NS}Component"):
        for key in comp.iter(f"{WIX_NS}RegistryKey"):
            if key.get("ForceDeleteOnUninstall") == "yes":
                if key.get("Root") != "HKLM":
                    raise BuildError(f"only HKLM keys are supported, not {key.get('Root')}")
                out.append((comp.attrib["Id"], key.attrib["Key"]))
    return out


def apply_same_version_upgrades(msi: Path) -> None:
    """What MajorUpgrade/@AllowSameVersionUpgrades does in WiX: the row finding older versions
    includes the package's own version (wixl ignores the attribute)."""
    version = {row[0]: row[1] for row in export_table(msi, "Property")}["ProductVersion"]
    rows = [r for r in export_table(msi, "Upgrade") if r[2] == version and not r[1]]
    if len(rows) != 1:
        raise BuildError(f"{msi} has no single Upgrade row for versions up to {version}")
    code, attributes, action = rows[0][0], int(rows[0][4]), rows[0][6]
    # Attributes is part of the table's primary key, which msibuild cannot UPDATE: replace the row.
    _run([_tool("msibuild"), str(msi), "-q",
          f"DELETE FROM `Upgrade` WHERE `ActionProperty` = {_sql_string(action)}"])
    _run([_tool("msibuild"), str(msi), "-q",
          "INSERT INTO `Upgrade` (`UpgradeCode`, `VersionMax`, `Attributes`, `ActionProperty`) "
          f"VALUES ({_sql_string(code)}, {_sql_string(version)}, "
          f"{attributes | VERSION_MAX_INCLUSIVE}, {_sql_string(action)})"])


def apply_force_deleted_keys(msi: Path, keys: Sequence[tuple[str, str]]) -> None:
    """Registry rows named "-": the key and its subkeys go when the component is uninstalled."""
    for component, key in keys:
        row_id = _ident("RemoveKey", key)
        _run([_tool("msibuild"), str(msi), "-q",
              "INSERT INTO `Registry` (`Registry`, `Root`, `Key`, `Name`, `Component_`) "
              f"VALUES ({_sql_string(row_id)}, 2, {_sql_string(key)}, '-', "
              f"{_sql_string(component)})"])


def export_table(msi: Path, table: str) -> list[list[str]]:
    """The rows of one MSI table (`msiinfo export`), without its three header lines."""
    result = subprocess.run([_tool("msiinfo"), "export", str(msi), table], check=True,
                            capture_output=True, text=True)
    lines = result.stdout.splitlines()[3:]
    return [line.split("\t") for line in lines if line]


def build_msi(bundle: Path, out: Path, work: Path, version: str,
              arp: ArpInfo | None = None) -> Path:
    """Build the Linux TEST MSI around `bundle` with wixl; return its path."""
    wixl = _tool("wixl")
    arp = arp or ArpInfo.default()
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    # wixl only finds sources by relative paths (it rejects absolute ones), resolved from its
    # working directory: link the bundle and the icon into the scratch folder and run there.
    links = {"bundle": bundle.resolve(), "app-icon.ico": ICON.resolve()}
    for name, target in links.items():
        link = work / name
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(target, target_is_directory=target.is_dir())
    files = [BundleFile(Path("bundle") / f.source.relative_to(bundle), f.rel_dir, f.name)
             for f in bundle_files(bundle)]
    (work / "bundle-files.wxs").write_text(files_fragment(files), encoding="utf-8")
    shutil.copyfile(WXS, work / WXS.name)
    msi = (out / msi_file_name(version, "wixl")).resolve()
    msi.unlink(missing_ok=True)
    defines = {**_wix_defines(version, TEST_PRODUCT_NAME, arp), "IconFile": "app-icon.ico",
               "Toolset": "wixl"}
    _run([wixl, "--arch", "x64", "-o", str(msi),
          *[arg for k, v in defines.items() for arg in ("-D", f"{k}={v}")],
          WXS.name, "bundle-files.wxs"], cwd=work)
    # What wixl cannot author, taken from the same .wxs that WiX builds on Windows.
    apply_component_conditions(msi, component_conditions())
    apply_secure_properties(msi, secure_properties())
    if same_version_upgrades():
        apply_same_version_upgrades(msi)
    apply_force_deleted_keys(msi, force_deleted_keys())
    print(LINUX_TEST_WARNING, file=sys.stderr, flush=True)
    return msi


def build_msi_wix(bundle: Path, out: Path, work: Path, version: str,
                  arp: ArpInfo | None = None) -> Path:
    """Build the real MSI around `bundle` with the WiX 3 toolset (candle + light, on Windows)."""
    candle, light = _tool("candle"), _tool("light")
    arp = arp or ArpInfo.default()
    work.mkdir(parents=True, exist_ok=True)
    out.mkdir(parents=True, exist_ok=True)
    fragment = work / "bundle-files.wxs"
    fragment.write_text(files_fragment(bundle_files(bundle.resolve())), encoding="utf-8")
    msi = (out / msi_file_name(version, "wix")).resolve()
    defines = {**_wix_defines(version, PRODUCT_NAME, arp), "IconFile": str(ICON),
               "Toolset": "wix"}
    _run([candle, "-nologo", "-arch", "x64", "-out", str(work) + os.sep,
          *[f"-d{k}={v}" for k, v in defines.items()], str(WXS), str(fragment)])
    # ICE38/ICE43 want the key path of a Start-menu shortcut's component in HKCU, which is
    # right for per-user packages only; this one is per-machine (ALLUSERS=1), so HKLM is right.
    _run([light, "-nologo", "-sice:ICE38", "-sice:ICE43", "-out", str(msi),
          str(work / "tapi-agent.wixobj"), str(work / "bundle-files.wixobj")])
    return msi


def main(argv: Sequence[str] | None = None) -> int:
    """Command line of the build script."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", type=Path, default=ROOT / "dist",
                        help="where the bundle and the MSI go (default: dist/)")
    parser.add_argument("--work", type=Path, default=ROOT / "build" / "installer",
                        help="scratch folder (default: build/installer/)")
    parser.add_argument("--bundle", type=Path,
                        help="use this existing onedir bundle instead of running PyInstaller")
    parser.add_argument("--skip-msi", action="store_true", help="build the frozen app only")
    parser.add_argument("--toolset", choices=("wixl", "wix"), default="wixl",
                        help="wix (WiX 3 on Windows: the real package) or wixl (msitools on "
                             "Linux: a test build; default)")
    parser.add_argument("--version", dest="build_version",
                        help="the build's version (default: from the release tag or the commit "
                             "count, see installer/versioninfo.py)")
    defaults = ArpInfo.default()
    parser.add_argument("--help-url", default=defaults.help_url,
                        help="Add/Remove Programs help link (default: the repository's IT guide)")
    parser.add_argument("--about-url", default=defaults.about_url,
                        help="Add/Remove Programs about link (default: the git remote origin)")
    parser.add_argument("--contact", default=defaults.contact,
                        help="Add/Remove Programs contact (default: the manufacturer)")
    args = parser.parse_args(argv)
    try:
        if args.build_version:
            os.environ[versioninfo.BUILD_VERSION_ENV] = args.build_version
        version = versioninfo.build_version()
        # PyInstaller's spec stamps the executables with the same version.
        os.environ[versioninfo.BUILD_VERSION_ENV] = version
    except ValueError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    print(f"version: {version}")
    arp = ArpInfo(args.help_url, args.about_url, args.contact)
    if not arp.help_url or not arp.about_url:
        print("warning: no --help-url / --about-url (no git remote origin): Add/Remove Programs "
              "will show no link", file=sys.stderr)
    try:
        bundle = args.bundle or build_bundle(args.dist, args.work / "pyinstaller")
        print(f"bundle: {bundle}")
        if not args.skip_msi:
            make = build_msi if args.toolset == "wixl" else build_msi_wix
            msi = make(bundle, args.dist, args.work / args.toolset, version, arp)
            print(f"msi: {msi}")
    except BuildError as exc:
        print(f"build failed: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
