# shellcheck shell=bash
# Logging, stages with elapsed time, failure messages and the cleanup stack of build_image.sh.

BUILD_START=$(date +%s)
STAGE_NAME=""
STAGE_START=0
CLEANUPS=()

_elapsed() { # seconds -> "1m05s"
    local s=$1
    printf '%dm%02ds' $((s / 60)) $((s % 60))
}

log() { printf '    %s\n' "$*" >&2; }
warn() { printf 'WARNING: %s\n' "$*" >&2; }

die() {
    # shellcheck disable=SC2016  # the quotes are literal text
    printf '\nERROR%s: %s\n' "${STAGE_NAME:+ in stage '$STAGE_NAME'}" "$*" >&2
    exit 1
}

stage() { # stage NAME: ends the previous stage and starts the next one
    stage_done
    STAGE_NAME=$1
    STAGE_START=$(date +%s)
    printf '==> [%s] %s\n' "$(_elapsed $((STAGE_START - BUILD_START)))" "$STAGE_NAME" >&2
}

stage_done() {
    [[ -n $STAGE_NAME ]] || return 0
    local now
    now=$(date +%s)
    printf '    done: %s in %s\n' "$STAGE_NAME" "$(_elapsed $((now - STAGE_START)))" >&2
    STAGE_NAME=""
}

# on_exit CMD...: run CMD at exit (failure, Ctrl-C or success), last registered first.
on_exit() {
    local quoted
    printf -v quoted '%q ' "$@"
    CLEANUPS+=("$quoted")
}

# run_child CMD...: run a long command (mmdebstrap, the chroot, xz) as a child whose PID the
# cleanup knows, so that Ctrl-C or a SIGTERM to this script stops it before files are removed.
# CHILD_NAMESPACE=yes marks an `unshare --pid` child: stopping it kills its whole PID namespace.
CHILD_PID=""
CHILD_NAMESPACE=no
run_child() {
    local status=0
    "$@" &
    CHILD_PID=$!
    wait "$CHILD_PID" || status=$?
    CHILD_PID=""
    return "$status"
}

_stop_child() {
    [[ -n $CHILD_PID ]] && kill -0 "$CHILD_PID" 2>/dev/null || return 0
    if [[ $CHILD_NAMESPACE == yes ]]; then
        # SIGKILL to the namespace's init kills every process in it; unshare then exits
        local init
        for init in $(ps -o pid= --ppid "$CHILD_PID"); do kill -KILL "$init" 2>/dev/null || true; done
    else
        kill -TERM "$CHILD_PID" 2>/dev/null || true
    fi
    local waited
    for ((waited = 0; waited < 60; waited++)); do
        kill -0 "$CHILD_PID" 2>/dev/null || return 0
        sleep 0.5
    done
    kill -KILL "$CHILD_PID" 2>/dev/null || true
    sleep 1
}

run_cleanups() {
    local status=$? i
    trap - EXIT INT TERM ERR
    _stop_child
    for ((i = ${#CLEANUPS[@]} - 1; i >= 0; i--)); do
        eval "${CLEANUPS[i]}" || printf 'cleanup failed: %s\n' "${CLEANUPS[i]}" >&2
    done
    if ((status != 0)); then
        printf 'build failed after %s; temporary files, mounts and binfmt entries were removed\n' \
            "$(_elapsed $(($(date +%s) - BUILD_START)))" >&2
    fi
    exit "$status"
}

# Any command that fails without its own message still says what failed, and where.
_on_error() {
    local status=$1 command=$2 line=$3
    trap - ERR
    die "command failed with exit status $status (line $line): $command"
}

install_traps() {
    trap '_on_error $? "$BASH_COMMAND" "${BASH_SOURCE[0]##*/}:$LINENO"' ERR
    trap run_cleanups EXIT
    trap 'printf "\ninterrupted\n" >&2; exit 130' INT
    trap 'printf "\nterminated\n" >&2; exit 143' TERM
}

sha256() { sha256sum "$1" | cut -d' ' -f1; }

mib_ceil() { # bytes -> whole MiB, rounded up
    echo $((($1 + 1048575) / 1048576))
}
