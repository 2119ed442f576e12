# Shared by the scripts: where the build puts nginx and the module.
# shellcheck shell=bash

REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

# cargo profile -> target directory name
profile_dir() {
    case "$1" in
        release) echo release ;;
        *) echo debug ;;
    esac
}

# Builds nginx (vendored) and the module for PROFILE (debug or release).
build_module() {
    local profile="$1"
    local flags=()
    [ "$profile" = release ] && flags+=(--release)
    (cd "$REPO_ROOT" && cargo build --locked "${flags[@]}")
}

# The nginx binary the vendored build produced for PROFILE.
nginx_binary() {
    local dir
    dir="$REPO_ROOT/target/$(profile_dir "$1")/build"
    # shellcheck disable=SC2012
    ls -t "$dir"/nginx-sys-*/out/objs/nginx 2>/dev/null | head -n 1
}

module_library() {
    echo "$REPO_ROOT/target/$(profile_dir "$1")/libngx_stream_dns_service_module.so"
}
