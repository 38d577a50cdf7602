"""The hub's routes, one module per resource, each a small class given the app (its shared
state: storage, auth, the access checks). :class:`dismai_data.hub.server.HubApp` maps paths to
their handlers.

* :mod:`.repos`: whoami, validate-yaml, create/delete/move a repo, settings, super-squash
* :mod:`.listing`: list models/datasets/spaces, repo info, the card's metadata and tags
* :mod:`.files`: resolve (download), tree, paths-info
* :mod:`.commits`: preupload, commit
* :mod:`.refs`: branches, tags, refs, commit history
* :mod:`.lfs`: the git-LFS batch API and its upload URL
* :mod:`.cas`: the Xet write token and the Xet CAS endpoints (xorbs, shards)

The web pages are :mod:`dismai_data.hub.web`.
"""


class Routes:
    """Base of the route classes: the app and its storage."""

    def __init__(self, hub):
        self.hub = hub
        self.storage = hub.storage
