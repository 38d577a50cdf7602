"""Reference baseline models (installed as ``dismai_data.models``).

This folder's one job: baseline generators and the relaxer published as hub model
repos (issue: reference baselines). It is empty until those land; see ARCHITECTURE.md.
"""
