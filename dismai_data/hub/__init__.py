"""A local hub that speaks the Hugging Face Hub API used by the pinned clients
(datasets 5.2.0, huggingface_hub 2.4.0, hf-xet 1.8.0), so that ``load_dataset``,
``push_to_hub``, ``HfApi`` and ``HfFileSystem`` work unmodified with only ``HF_ENDPOINT`` set.

* ``dismai hub serve [--host 127.0.0.1] [--port 8321] [--storage DIR] [--workers N]``
* ``dismai hub token create --user NAME --scope read|write [--org ORG] [--storage DIR]``
* ``dismai hub publish FOLDER --repo dismai/NAME --endpoint URL --token TOKEN``

Modules: ``server`` (ASGI app, routing on the raw path), ``storage`` (content-addressed,
fsync-then-rename storage; see STORAGE.md, which also says how blobs would move to S3),
``xet`` (Xet xorb/shard parsing and hashing), ``auth`` (tokens, organisations, signed
grants), ``web`` (HTML pages), ``openapi`` (the OpenAPI document), ``publish``
(publish_dataset, serve_in_background, publisher_token).
"""
