"""The operator harness beside the Faust app: command line, embedded broker, worker launcher,
`process`, `replay`, `demo`, `forget` and `audience` (the app itself is in `streams`)."""
