# shellcheck shell=bash disable=SC2034
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# tools/lib/build.sh - shared by tools/test and tools/run; source it, don't run it.
#
# Defines the Meson options of each build directory under build/ and
# build_setup(), which configures a build directory the first time and
# reconfigures it (with the same options) on later runs, so build dirs are
# reused and a second run is cheap.

# Options of build/plain: the ordinary build, every warning an error.
BUILD_PLAIN_OPTS=(-Dwerror=true)

# Options of build/sanitize: ASan + UBSan. b_lundef=false because the
# sanitizer runtimes resolve symbols at run time.
BUILD_SANITIZE_OPTS=(-Dwerror=true "-Db_sanitize=address,undefined" -Db_lundef=false)

# build_setup DIR [MESON OPTION...]
#
# Configures DIR, or reconfigures it when it already holds a configured
# build. If reconfiguring fails (say after a Meson upgrade), wipes it and
# configures it afresh.
build_setup() {
    local dir=$1
    shift

    if [[ -f $dir/meson-private/coredata.dat ]]; then
        if meson setup --reconfigure "$@" "$dir" >"$dir.setup.log" 2>&1; then
            rm -f "$dir.setup.log"
            return 0
        fi
        echo "tools: reconfiguring $dir failed, wiping it:" >&2
        cat "$dir.setup.log" >&2
        rm -f "$dir.setup.log"
        meson setup --wipe "$@" "$dir"
        return
    fi

    meson setup "$@" "$dir"
}
