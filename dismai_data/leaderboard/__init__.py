"""The Dismai leaderboard: submissions, the scoring worker and the page on the hub.

* ``dismai submit`` (:mod:`.client`): validates predictions against the task, uploads them
  as a dataset repo of the submitter and queues the evaluation through the hub's API
  (:mod:`.service`, served under ``/api/leaderboard`` by :mod:`.routes`).
* the scoring worker (:mod:`.worker`, :mod:`.score`): started with the hub or as
  ``dismai leaderboard worker``; scores with ``dismai_data.evaluation`` and appends one
  row per submission to the ``dismai/leaderboard`` dataset repo (:mod:`.rows`), or, while
  the predictions repo is private, withholds it in the hub's storage (:mod:`.store`).
* the queue (:mod:`.queue`): atomic files in the hub's storage folder.
* the page ``/leaderboard`` (:mod:`.page`, HTML in ``templates/``).
* its place on the hub (:mod:`.routes`): ``mount(app)`` adds the API, the page, the reconcile
  hook and the worker to a hub app (the hub imports nothing of the leaderboard).

``submit_and_wait`` is what the main command calls after generating the baselines.
"""

from .client import SubmissionError, submit_and_wait, submit_predictions, wait_for

__all__ = ["SubmissionError", "submit_and_wait", "submit_predictions", "wait_for"]
