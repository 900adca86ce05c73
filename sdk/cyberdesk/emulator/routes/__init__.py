"""HTTP routes of the emulated API, one module per resource; each `build(emulator)` returns a router."""
