# nginx build-system integration (sourced by nginx's ./configure after
# "config"): adds the Makefile rule that builds the Rust static library.

# shellcheck shell=sh disable=SC2154
# (variables are shared with nginx's auto/ scripts and "config")

# cargo runs the nginx-sys build script from another directory, so the nginx
# directories are passed as absolute paths.

ngx_dns_service_objs=$(cd "$NGX_OBJS" && pwd)
ngx_dns_service_src=$(pwd)

cat << END                                                  >> "$NGX_MAKEFILE"

# ngx_stream_dns_service_module: the Rust static library. cargo tracks the
# sources and rebuilds only what changed, so it is always invoked. The "+"
# marks the command as recursive: with "make -jN", make then hands its job
# server to cargo, which shares make's job slots.

.PHONY: $ngx_dns_service_lib

$ngx_dns_service_lib:
	+NGINX_BUILD_DIR="$ngx_dns_service_objs" \\
	NGINX_SOURCE_DIR="$ngx_dns_service_src" \\
	$NGX_CARGO rustc \\
		--manifest-path "$ngx_addon_dir/Cargo.toml" \\
		--lib \\
		--crate-type staticlib \\
		--profile $NGX_CARGO_PROFILE \\
		--no-default-features --features module \\
		--target-dir "$ngx_dns_service_target_dir" $NGX_CARGO_OPT

END

if [ "$ngx_dns_service_link" = DYNAMIC ]; then
    # the module's shared object is linked from the static library
    cat << END                                              >> "$NGX_MAKEFILE"
$NGX_OBJS${ngx_dirsep}ngx_stream_dns_service_module$ngx_modext:	$ngx_dns_service_lib

END
fi
