"""Dataset and model card templates (Jinja2, ``*.md.j2``) and their rendering.

Installed as ``dismai_data.cards``; see :func:`render_dataset_card`.
"""
