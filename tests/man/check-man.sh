#!/bin/sh
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# check-man.sh - the man pages render cleanly and match the code
#
# Usage: check-man.sh MANDIR SYMFILE BUS1D [BUS1CTL]
#
#   MANDIR   the man/ source directory (pages are NAME.SECTION, plus
#            meson.build with their install_man() list)
#   SYMFILE  src/client/libbus1-client.sym
#   BUS1D    the built bus1d binary
#   BUS1CTL  the built bus1ctl binary, or empty if there is none yet
#
# Checks, each failure printed as "FAIL: ...":
#
#  1. Every page renders without a single warning with
#     `groff -man -ww -z`, for the default device and for -Tutf8 (the
#     preprocessors named on a first line `'\" t` are run, as man(1)
#     does), and, if man(1) is installed, with `man --warnings=w` looked
#     up by section and name in a tree laid out as installed, so that the
#     `.so` alias pages are followed exactly as `man NAME` would.
#  2. Every page's .TH names the page (title and section match the file
#     name), and every page is listed in MANDIR/meson.build.
#  3. An alias page is a single `.so manS/TARGET.S` line whose target is a
#     real page in MANDIR.
#  4. Every symbol exported by SYMFILE has a page NAME.3 (a page or an
#     alias), and the page it resolves to lists the name in its NAME
#     section; every bus1_*.3 page names an exported symbol.
#  5. A reference `.BR bus1... (S)` or `.BR libbus1... (S)` names a page
#     that exists, or one still to be written (bus1d.8, bus1ctl.1: a note).
#  6. For bus1d.8 and bus1ctl.1, when the page exists (else a note): every
#     long option that `PROG --help` prints at the start of an option line
#     appears in the page, and every long option in a .TP tag of the page's
#     OPTIONS section exists in --help. If --help has a line ending in
#     "Commands:", the first word of each indented line after it (up to a
#     blank line) is a command that must appear in the page, and every
#     .TP tag of a COMMANDS section must start with one of those commands.

set -u

if [ $# -lt 3 ]; then
        echo "usage: $0 MANDIR SYMFILE BUS1D [BUS1CTL]" >&2
        exit 2
fi
mandir=$1
symfile=$2
bus1d=$3
bus1ctl=${4:-}

# pages the project still has to write: references to them are notes
pending="bus1d.8 bus1ctl.1"

failures=0
fail() {
        echo "FAIL: $*"
        failures=$((failures + 1))
}
note() {
        echo "note: $*"
}

if ! command -v groff >/dev/null 2>&1; then
        echo "FAIL: groff is not installed (tools/deps installs it)"
        exit 1
fi

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM

# a UTF-8 locale if there is one, for -Tutf8 and man(1)
utf8=C.UTF-8
if command -v locale >/dev/null 2>&1 && ! locale -a 2>/dev/null | grep -qi '^c\.utf-\?8$'; then
        utf8=C
fi

# page name without section: bus1.conf.5 -> bus1.conf
page_name() {
        echo "${1%.*}"
}
page_section() {
        echo "${1##*.}"
}

# the target of an alias page ("man3/foo.3"), or nothing
alias_target() {
        sed -n 's/^\.so[ \t]\{1,\}\([^ \t]*\)[ \t]*$/\1/p' "$1" | head -n 1
}

# groff options for the preprocessors a first line `'\" tep` asks for
preprocessors() {
        first=$(head -n 1 "$1")
        case $first in
        "'\\\" "*) ;;
        *) return ;;
        esac
        letters=${first#"'\\\" "}
        opts=
        case $letters in *t*) opts="$opts -t" ;; esac
        case $letters in *e*) opts="$opts -e" ;; esac
        case $letters in *p*) opts="$opts -p" ;; esac
        case $letters in *r*) opts="$opts -R" ;; esac
        echo "$opts"
}

# the page's text as plain ASCII
render_ascii() {
        # shellcheck disable=SC2046
        groff $(preprocessors "$1") -man -Tascii -P-cbou "$1" 2>/dev/null
}

pages=
for f in "$mandir"/*.[1-8]; do
        [ -f "$f" ] || continue
        pages="$pages $(basename "$f")"
done
if [ -z "$pages" ]; then
        fail "no pages in $mandir"
        exit 1
fi

# 1-3: rendering, .TH, install list, aliases
n_pages=0
for p in $pages; do
        f=$mandir/$p
        name=$(page_name "$p")
        sec=$(page_section "$p")
        n_pages=$((n_pages + 1))

        if ! grep -q "'$p'" "$mandir/meson.build"; then
                fail "$p is not installed by $mandir/meson.build"
        fi

        target=$(alias_target "$f")
        if [ -n "$target" ]; then
                if [ "$(grep -cv '^\.\\"' "$f")" -ne 1 ]; then
                        fail "$p: an alias page holds only its .so line"
                fi
                tsec=$(page_section "$target")
                tdir=${target%/*}
                tpage=${target##*/}
                if [ "$tdir" != "man$tsec" ]; then
                        fail "$p: .so $target is not in man$tsec/"
                elif [ ! -f "$mandir/$tpage" ]; then
                        fail "$p: .so $target: no such page in $mandir"
                elif [ -n "$(alias_target "$mandir/$tpage")" ]; then
                        fail "$p: .so $target is itself an alias"
                fi
                continue
        fi

        # the title as the reader sees it: \- is a hyphen
        th=$(sed -n 's/^\.TH[ \t]\{1,\}\([^ \t]*\)[ \t]\{1,\}\([^ \t]*\).*/\1 \2/p' "$f" |
             head -n 1 | sed 's/\\-/-/g; s/"//g')
        if [ -z "$th" ]; then
                fail "$p: no .TH line"
        else
                want=$(echo "$name $sec" | tr '[:lower:]' '[:upper:]')
                got=$(echo "$th" | tr '[:lower:]' '[:upper:]')
                [ "$got" = "$want" ] || fail "$p: .TH says '$th', expected '$want'"
        fi

        pre=$(preprocessors "$f")
        for dev in "" -Tutf8; do
                # shellcheck disable=SC2086
                LC_ALL=$utf8 groff $pre -man -ww -z $dev "$f" >"$tmp/out" 2>&1
                rc=$?
                if [ $rc -ne 0 ] || [ -s "$tmp/out" ]; then
                        fail "groff${pre} -man -ww -z${dev:+ $dev} $p (exit $rc):"
                        sed 's/^/    /' "$tmp/out"
                fi
        done

        # what man(1) shows at 80 columns (line length 78) must fit: groff
        # does not warn about lines of no-fill text (.nf) that overflow
        # shellcheck disable=SC2086
        groff $pre -man -Tascii -P-cbou -rLL=78n -rLT=78n "$f" 2>/dev/null |
                awk -v page="$p" 'length($0) > 78 {
                        printf "    %s: %d columns: %s\n", page, length($0), $0 }' >"$tmp/wide"
        if [ -s "$tmp/wide" ]; then
                fail "$p has lines wider than 78 columns at MANWIDTH=80:"
                cat "$tmp/wide"
        fi
done
echo "checked $n_pages pages with groff"

# 1: man(1), on a tree laid out as installed
if command -v man >/dev/null 2>&1; then
        for p in $pages; do
                sec=$(page_section "$p")
                mkdir -p "$tmp/tree/man$sec"
                cp "$mandir/$p" "$tmp/tree/man$sec/$p"
        done
        for p in $pages; do
                name=$(page_name "$p")
                sec=$(page_section "$p")
                (cd "$tmp" && LC_ALL=$utf8 MANWIDTH=80 MANPAGER=cat PAGER=cat \
                        man -M "$tmp/tree" --warnings=w "$sec" "$name") \
                        >"$tmp/man.out" 2>"$tmp/man.err"
                rc=$?
                if [ $rc -ne 0 ] || [ -s "$tmp/man.err" ] || [ ! -s "$tmp/man.out" ]; then
                        fail "man --warnings=w $sec $name (exit $rc):"
                        sed 's/^/    /' "$tmp/man.err"
                fi
        done
        echo "checked $n_pages pages with man"
else
        note "man is not installed; skipping the man(1) rendering"
fi

# 4: every exported symbol has a page, and the page names it
symbols=$(sed -n 's/^[ \t]*\(bus1_[A-Za-z0-9_]*\);.*/\1/p' "$symfile")
if [ -z "$symbols" ]; then
        fail "no symbols found in $symfile"
fi
n_symbols=0
for s in $symbols; do
        n_symbols=$((n_symbols + 1))
        f=$mandir/$s.3
        if [ ! -f "$f" ]; then
                fail "$s has no page ($f missing)"
                continue
        fi
        target=$(alias_target "$f")
        [ -n "$target" ] && f=$mandir/${target##*/}
        [ -f "$f" ] || continue
        if ! sed -n '/^\.SH NAME/,/^\.SH [^N]/p' "$f" | grep -qw "$s"; then
                fail "$s: its page $(basename "$f") does not name it under NAME"
        fi
done
for p in $pages; do
        case $p in
        bus1_*.3) ;;
        *) continue ;;
        esac
        name=$(page_name "$p")
        echo "$symbols" | grep -qx "$name" || fail "$p documents $name, which $symfile does not export"
done
echo "checked $n_symbols exported symbols"

# 5: references to the project's own pages
for p in $pages; do
        f=$mandir/$p
        [ -n "$(alias_target "$f")" ] && continue
        refs=$(sed -n 's/^\.BR[ \t]\{1,\}\(\(lib\)\{0,1\}bus1[^ \t]*\)[ \t]\{1,\}(\([1-8]\)).*/\1.\3/p' "$f" |
               sed 's/\\-/-/g' | sort -u)
        for r in $refs; do
                [ -f "$mandir/$r" ] && continue
                case " $pending " in
                *" $r "*) note "$p refers to $r, which is not written yet" ;;
                *) fail "$p refers to $r, which does not exist" ;;
                esac
        done
done

# 6: options (and commands) of the programs against their pages
help_options() {
        sed -n 's/^[ \t]*\(-[A-Za-z0-9], *\)\{0,1\}\(--[A-Za-z0-9][A-Za-z0-9-]*\).*/\2/p' "$1" | sort -u
}
help_commands() {
        awk '/[Cc]ommands:[ \t]*$/ { on = 1; next }
             on && /^[ \t]*$/ { on = 0 }
             on && /^[ \t]+[A-Za-z]/ { print $1 }' "$1" | sort -u
}
# long options in the .TP tags of a section of a page's source
tagged() {
        awk -v sect="$2" '
                /^\.SH/ { on = ($0 ~ "^\\.SH[ \t]+\"?" sect "\"?[ \t]*$") ; next }
                on && /^\.TP/ { tag = 1; next }
                on && tag { print; tag = 0 }' "$1"
}
check_program() {
        prog=$1
        page=$2
        bin=$3
        f=$mandir/$page
        if [ ! -f "$f" ]; then
                note "$page is not written yet; skipping the check of $prog --help against it"
                return
        fi
        if [ -z "$bin" ] || [ ! -x "$bin" ]; then
                fail "$page exists, but no $prog binary was given to check it against"
                return
        fi
        if ! "$bin" --help >"$tmp/help" 2>&1; then
                fail "$prog --help failed"
                return
        fi
        render_ascii "$f" >"$tmp/page.txt"

        opts=$(help_options "$tmp/help")
        [ -n "$opts" ] || fail "$prog --help lists no long options"
        for o in $opts; do
                grep -Eq -- "$o([^A-Za-z0-9-]|\$)" "$tmp/page.txt" ||
                        fail "$page does not document $prog $o"
        done
        for o in $(tagged "$f" OPTIONS | sed 's/\\-/-/g' |
                   grep -o -- '--[A-Za-z0-9][A-Za-z0-9-]*' | sort -u); do
                echo "$opts" | grep -qx -- "$o" ||
                        fail "$page documents $o, which $prog --help does not list"
        done

        cmds=$(help_commands "$tmp/help")
        for c in $cmds; do
                grep -Eqw -- "$c" "$tmp/page.txt" || fail "$page does not document the command $prog $c"
        done
        if [ -n "$cmds" ]; then
                for c in $(tagged "$f" COMMANDS | sed 's/^\.[A-Z]*[ \t]*//; s/"//g' |
                           awk '{ print $1 }' | sort -u); do
                        echo "$cmds" | grep -qx -- "$c" ||
                                fail "$page documents the command $c, which $prog --help does not list"
                done
        fi
        echo "checked $page against $prog --help"
}
check_program bus1d bus1d.8 "$bus1d"
check_program bus1ctl bus1ctl.1 "$bus1ctl"

if [ "$failures" -gt 0 ]; then
        echo "$failures failure(s)"
        exit 1
fi
echo "all man page checks passed"
exit 0
