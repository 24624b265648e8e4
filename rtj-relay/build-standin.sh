#!/usr/bin/env bash
# Compile the relay plug-in under Mono against the SDK stand-in (sdk-standin/), plus the test harness (harness/).
# CI and tests/integration/test_relay_plugin.py use it; the real build is `dotnet build` (see README.md).
# Usage: rtj-relay/build-standin.sh [output directory, default rtj-relay/bin/standin]
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
out="${1:-$here/bin/standin}"
mkdir -p "$out"
if ! command -v mcs >/dev/null 2>&1; then
  echo "mcs (Mono C# compiler) not found: apt-get install -y mono-mcs mono-runtime libmono-system-net-http4.0-cil" >&2
  exit 127
fi
MCS=(mcs -langversion:7 -nologo -warnaserror+ -nowarn:1591)
"${MCS[@]}" -target:library -out:"$out/Microsoft.Xrm.Sdk.dll" "$here"/sdk-standin/*.cs
"${MCS[@]}" -target:library -r:"$out/Microsoft.Xrm.Sdk.dll" -r:System.Net.Http.dll \
  -out:"$out/ChannelRelay.dll" "$here/ChannelRelayPlugin.cs"
"${MCS[@]}" -target:exe -r:"$out/Microsoft.Xrm.Sdk.dll" -r:"$out/ChannelRelay.dll" \
  -out:"$out/RelayHarness.exe" "$here"/harness/*.cs
echo "built $out/ChannelRelay.dll and $out/RelayHarness.exe"
