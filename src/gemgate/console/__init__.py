"""The web console at /console: server-rendered pages (Jinja2, autoescaped), a session after
signing in with the admin key, CSRF tokens on every change, a strict Content-Security-Policy.
No Node.js, no build step: templates and one stylesheet ship with the package."""
