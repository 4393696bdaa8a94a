# Checks the environment the contract promises (docs/runtimes.md).
yn() { if "$@"; then echo yes; else echo no; fi; }
echo "stage=$CORRAL_STAGE"
echo "entry=$CORRAL_ENTRY"
echo "cwd_is_workdir=$(yn [ "$(pwd -P)" = "$(cd "$CORRAL_WORKDIR" && pwd -P)" ])"
echo "home_is_workdir=$(yn [ "$HOME" = "$CORRAL_WORKDIR" ])"
echo "runtime_dir_has_runtime_sh=$(yn [ -x "$CORRAL_RUNTIME_DIR/runtime.sh" ])"
echo "path=$PATH"
echo "lang=$LANG"
echo "tmpdir_writable=$(yn [ -d "$TMPDIR" -a -w "$TMPDIR" ])"
echo "greeting=$GREETING"
# runtime.sh must exec bash: our parent is then not the runtime.sh shell.
echo "wrapped=$(yn [ "$(cat /proc/$PPID/comm)" = runtime.sh ])"
echo "uid_is_root=$(yn [ "$(id -u)" = 0 ])"
