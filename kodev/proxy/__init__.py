"""The dev proxy: a service's front door while watching (kodev.toml `proxy` / `upstream`, `kodev run -w
--proxy`). `spec` is what configures one (no I/O, no aiohttp); `page` what it adds to pages; `server` one
service's proxy; `websocket` the relay of upgraded connections; `runner` the event loop they share and the
only API the watch loop uses. Importing this package imports no HTTP stack: only `server` does."""
