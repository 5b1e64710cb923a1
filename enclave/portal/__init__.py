"""The web portal, an adapter like the API: server-rendered pages (Jinja2 and the GOV.UK Design
System) over the same use cases and the same access policy, served by the API's process under
``/portal``. See docs/portal.md."""
