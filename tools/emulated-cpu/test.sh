#!/usr/bin/env bash
# Runs test classes on an emulated x86-64 CPU without AVX-512 (QEMU user mode's "max" CPU: AVX2 and
# FMA), so that ONNX Runtime's, libtorch's and the engine's own AVX2 code runs on a host with AVX-512.
# What a host without AVX-512 computes is then checked by the same tests, against the same float64
# references, without such a host.
#
# usage: [QEMU_CPU=MODEL] tools/emulated-cpu/test.sh CLASS...    e.g. tools/emulated-cpu/test.sh NativeOpsTests GradientRuleTests
# QEMU_CPU picks another of `qemu-x86_64 -cpu help`'s models (Nehalem: SSE4.2 and no AVX at all).
# Each class runs in its own process, in xunit's console runner (in-process: vstest's test host
# would start natively). Child processes the tests start (isolated import checks, Chromium) run natively.
#
# QEMU 7.2 (Debian 12) builds signal frames 8 bytes off the 16-byte alignment .NET's context capture
# (fxsave) needs, so a signal the runtime handles ends the process: thread-suspension signals are
# switched off below (DOTNET_INTERNAL_ThreadSuspendInjection=0); a hardware NullReferenceException,
# caught or not, still ends the run ("uncaught target signal 11"): FuzzTests cannot run here, as
# ImageSharp meets some corrupt JPEGs with one. The runtime's W^X (JIT'd code written through a
# second mapping of its pages) is off too: with it on, runs crashed here as well.
# Emulation is 5-50 times slower.
set -uo pipefail
cd "$(dirname "$0")/../.."
(( $# > 0 )) || { sed -n 2,10p "$0" | cut -c3-; exit 2; }

if ! command -v qemu-x86_64 >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq qemu-user >/dev/null
fi
dotnet build tests/SaliencyService.Tests -v quiet -nologo >/dev/null || { echo "the tests do not build"; exit 1; }

# xunit's console runner from NuGet, restored by a throwaway project.
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cat >"$work/runner.csproj" <<'XML'
<Project Sdk="Microsoft.NET.Sdk">
  <PropertyGroup><TargetFramework>net10.0</TargetFramework><ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally></PropertyGroup>
  <ItemGroup><PackageReference Include="xunit.runner.console" Version="2.4.1" /></ItemGroup>
</Project>
XML
dotnet restore "$work/runner.csproj" -v quiet >/dev/null || { echo "xunit.runner.console did not restore"; exit 1; }
runner="${NUGET_PACKAGES:-$HOME/.nuget/packages}/xunit.runner.console/2.4.1/tools/netcoreapp2.0"

# The runner runs in the tests' own folder, with their dependencies (hard links: no copy of libtorch).
bin="$work/bin"
cp -al tests/SaliencyService.Tests/bin/Debug/net10.0 "$bin" 2>/dev/null || cp -a tests/SaliencyService.Tests/bin/Debug/net10.0 "$bin"
cp "$runner"/xunit.console.dll "$runner"/xunit.runner.utility.netcoreapp10.dll "$runner"/xunit.runner.reporters.netcoreapp10.dll "$bin/"
cat >"$bin/runner.deps.json" <<'JSON'
{"runtimeTarget": {"name": ".NETCoreApp,Version=v10.0"},
 "targets": {".NETCoreApp,Version=v10.0": {"xunit.console/2.4.1": {"runtime": {
   "xunit.console.dll": {}, "xunit.runner.utility.netcoreapp10.dll": {}, "xunit.runner.reporters.netcoreapp10.dll": {}}}}},
 "libraries": {"xunit.console/2.4.1": {"type": "project", "serviceable": false, "sha512": ""}}}
JSON

status=0
for class in "$@"; do
    if [[ $class != *.* ]]; then # a class's short name: its namespace from its source
        file=$(grep -rlE --include='*.cs' "class $class\b" tests/SaliencyService.Tests | head -1)
        namespace=$(sed -n 's/^namespace \([A-Za-z0-9_.]*\);.*/\1/p' "${file:-/dev/null}" | head -1)
        class="${namespace:-SaliencyService.Tests}.$class"
    fi
    log="$work/$class.log"
    (cd "$bin" && DOTNET_INTERNAL_ThreadSuspendInjection=0 DOTNET_EnableWriteXorExecute=0 \
        qemu-x86_64 -cpu "${QEMU_CPU:-max}" "$(readlink -f "$(command -v dotnet)")" exec \
        --runtimeconfig SaliencyService.Tests.runtimeconfig.json --depsfile SaliencyService.Tests.deps.json \
        --additional-deps runner.deps.json xunit.console.dll SaliencyService.Tests.dll -class "$class" -noColor) >"$log" 2>&1
    rc=$?
    summary=$(grep -o 'Total: .*' "$log" | tail -1)
    echo "$class: ${summary:-no summary (exit $rc)}"
    if [[ $summary =~ ^Total:\ 0(,|$) ]]; then
        echo "  no tests ran: is $class a test class?"
        status=1
    elif (( rc != 0 )); then
        status=1
        grep -E '^\s+\S+ \[FAIL\]|uncaught target signal' "$log" | head -20
    fi
done
exit "$status"
