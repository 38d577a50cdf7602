"""A local hub that speaks the Hugging Face Hub API used by the pinned clients
(datasets 5.2.0, huggingface_hub 2.4.0, hf-xet 1.8.0), so that ``load_dataset``,
``push_to_hub``, ``HfApi`` and ``HfFileSystem`` work unmodified with only ``HF_ENDPOINT`` set.

* ``dismai hub serve [--host 127.0.0.1] [--port 8321] [--storage DIR] [--workers N]``
* ``dismai hub token create --user NAME --scope read|write [--org ORG] [--storage DIR]``
* ``dismai hub publish FOLDER --repo dismai/NAME --endpoint URL --token TOKEN``

Modules: ``server`` (the ASGI app: shared state, access checks, routing on the raw path,
extension points), ``routes`` (the handlers, one module per resource: repos, listing, files,
commits, refs, lfs, cas), ``responses`` (JSON/error responses, bounded body reading),
``storage`` (content-addressed, fsync-then-rename storage; see STORAGE.md, which also says how
blobs would move to S3), ``xet`` (Xet xorb/shard parsing and hashing, the reconstruction plan
of a download), ``auth`` (tokens, organisations, signed grants), ``limits`` (bounded JSON
parsing; body fields and options the hub does not implement are refused by name, never
dropped), ``gitignore`` (.gitignore rules for the preupload answer's shouldIgnore), ``web``
and ``preview`` (HTML pages from ``templates/``), ``openapi`` (the OpenAPI document),
``publish`` (publish_dataset, serve_in_background, publisher_token).

The hub imports nothing of the leaderboard: ``dismai_data.leaderboard.routes.mount`` adds it
to an app (``dismai hub serve --mount dismai_data.leaderboard.routes:mount``).

Private repos (``create_repo(private=True)`` or ``visibility="private"``, switched with
``update_repo_settings``) answer 404 RepoNotFound to everyone but the owner and members of
the owning organisation, on every API, file, web, upload and listing path; the leaderboard
(when mounted) hides rows whose predictions repo the viewer cannot see. Pull requests and
discussions are refused with 400 NotSupported; tests/hub/test_contract.py lists every client
option and what the hub does with it.

Files uploaded through Xet are downloaded through Xet, as on the Hub: resolve answers carry
``X-Xet-Hash`` and a ``xet-auth`` link, tree entries ``xetHash``; ``xet-read-token`` grants one
repo at one commit, and the reconstruction answers point to signed ranges of stored xorbs.
"""
