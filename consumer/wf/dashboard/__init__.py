"""`wf dashboard`: a web UI over wf's views and public functions (DESIGN §12).

app.py wires the aiohttp application (middlewares: database outage banner, Server-Timing, security
headers); pages.py reads (runs, a run, stages, dead letters, workflows); actions.py acts (cancel, retry,
pause, resume, signal, bulk by filter; stages pause and resume), only with WF_DASHBOARD_TOKEN and a login
allowed to; auth.py holds the token, the session cookie and the CSRF tokens; live.py LISTENs for run
changes and tells the open pages over server-sent events; views.py turns rows into the step graph and the
timeline. Templates in templates/, our own script and style in static/, the graph layout (dagre) and chart
(uPlot) libraries in static/vendor/, built by scripts/build-dashboard-assets from npm.
"""
