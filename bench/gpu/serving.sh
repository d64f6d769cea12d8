# Sourced by bench/gpu's scripts: one service at a time on $base, run from the published build in $app.
base=http://127.0.0.1:5099
pid=

start() { # NAME LOG STORE [VAR=VALUE ...]: a fresh service with its own store, once it answers
  local name=$1 log=$2 store=$3; shift 3
  env "$@" ASPNETCORE_URLS=$base Saliency__ModelStore="$store" Saliency__SeedDemoModels=false \
    Saliency__RateLimit__PermitsPerSecond=0 Saliency__Explain__CacheMegabytes=0 Logging__LogLevel__Microsoft.AspNetCore=Warning \
    dotnet "$app/SaliencyService.Api.dll" > "$log" 2>&1 &
  pid=$!
  for _ in $(seq 240); do
    curl -sf "$base/health/ready" > /dev/null && return 0
    kill -0 "$pid" 2> /dev/null || { echo "service $name exited"; tail -40 "$log"; return 1; }
    sleep 0.5
  done
  echo "service $name not ready"; return 1
}

stop() { kill "$pid" 2> /dev/null; wait "$pid" 2> /dev/null; }
