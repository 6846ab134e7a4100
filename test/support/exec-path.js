'use strict';
// Preloaded (NODE_OPTIONS=--require) by scripts/test-arm64.sh. Under qemu-user
// without binfmt_misc the host kernel cannot exec the arm64 node binary that
// process.execPath names, so tests that spawn process.execPath would fail
// with ENOEXEC; point it at a wrapper script that starts qemu with that node.
if (process.env.INTERLOCK_EXEC_PATH) process.execPath = process.env.INTERLOCK_EXEC_PATH;
