"""The daemon's read-only status page: access control (`auth`), what it shows (`page`), its routes (`routes`), and
its Jinja2 templates and static files (package data, so the page needs no internet and no build step)."""
