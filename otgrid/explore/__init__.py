"""``otgrid explore``: a local web page to move measures and watch the exact critic follow.

Three views, for teaching and auditing:

- **Critic**: two measures (presets, a spec in the command line's grammar, or Gaussian modes
  dragged on the plot), their exact critic with its certified bounds converging live, the
  critic's level lines, the optimal flow, ``|grad f|``, and in 1D the two CDFs and the closed
  form (:mod:`~otgrid.explore.critic_view`);
- **SCO**: a Gaussian or affine generator trained step by step with the exact critic, beside
  the same budget of WGAN-GP steps (:mod:`~otgrid.explore.sco_view`);
- **Audit**: a neural critic, uploaded or trained now, against the optimal one
  (:mod:`~otgrid.explore.audit_view`).

The server (:mod:`~otgrid.explore.server`) is the standard library's threading HTTP server with
JSON endpoints; the page is plain JavaScript drawing on canvases, shipped in ``static/``
(no build step, nothing fetched from the network). Computations run in worker threads
(:mod:`~otgrid.explore.jobs`), one set per browser tab (:mod:`~otgrid.explore.session`).

>>> from otgrid.explore import start_server
>>> server, url = start_server(port=0)
>>> url.startswith("http://127.0.0.1:")
True
>>> server.shutdown(); server.server_close()
"""

from otgrid.explore.server import ExploreApp, serve, start_server

__all__ = ["ExploreApp", "serve", "start_server"]
