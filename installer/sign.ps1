# Sign files with the team's code-signing certificate (signtool, SHA-256, RFC 3161 timestamp).
#
#   pwsh installer/sign.ps1 FILE...
#
# The certificate comes from the environment, as the Windows workflow passes its secrets:
#   SIGNING_CERT_PFX_BASE64  the .pfx file, base64
#   SIGNING_CERT_PASSWORD    its password
#   SIGNING_TIMESTAMP_URL    optional: the timestamp server (default: DigiCert's)
# Without a certificate nothing is signed and the log says so with a warning: a build for
# testing may be unsigned, but it never looks signed.
param([Parameter(Mandatory = $true, ValueFromRemainingArguments = $true)][string[]]$Files)
$ErrorActionPreference = "Stop"

if (-not $env:SIGNING_CERT_PFX_BASE64) {
    Write-Output "::warning::NOT SIGNED: the signing secrets (SIGNING_CERT_PFX_BASE64, SIGNING_CERT_PASSWORD) are not configured: $($Files -join ', ')"
    exit 0
}

# signtool comes with the Windows SDK: the newest x64 one.
$signtool = Get-ChildItem "${env:ProgramFiles(x86)}\Windows Kits\10\bin\*\x64\signtool.exe" |
    Sort-Object { [version]$_.Directory.Parent.Name } -ErrorAction SilentlyContinue |
    Select-Object -Last 1
if (-not $signtool) { throw "signtool.exe not found (install the Windows 10/11 SDK)" }
$timestamp = if ($env:SIGNING_TIMESTAMP_URL) { $env:SIGNING_TIMESTAMP_URL } else { "http://timestamp.digicert.com" }

$pfx = Join-Path ([System.IO.Path]::GetTempPath()) ("sign-" + [guid]::NewGuid() + ".pfx")
try {
    [System.IO.File]::WriteAllBytes($pfx, [Convert]::FromBase64String($env:SIGNING_CERT_PFX_BASE64))
    foreach ($file in $Files) {
        & $signtool.FullName sign /fd SHA256 /tr $timestamp /td SHA256 /f $pfx /p $env:SIGNING_CERT_PASSWORD /d "TAPI Agent" $file
        if ($LASTEXITCODE -ne 0) { throw "signtool sign failed for $file" }
        & $signtool.FullName verify /pa $file
        if ($LASTEXITCODE -ne 0) { throw "the signature of $file does not verify" }
        Write-Output "signed: $file"
    }
}
finally {
    Remove-Item $pfx -Force -ErrorAction SilentlyContinue
}
