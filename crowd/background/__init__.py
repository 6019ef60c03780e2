"""What runs outside a request: RQ jobs and the protocols that queue them.

The modules form one-way layers; each imports only the ones listed before it, so none of them
imports a job module to queue its job:

1. :mod:`~crowd.background.connections`: the servers and settings a job process uses.
2. :mod:`~crowd.background.scheduling`: when aggregation runs happen (queues the run job by
   name).
3. :mod:`~crowd.background.webhooks`: events and their delivery job.
4. :mod:`~crowd.background.training`: when retrains happen, and the training job.
5. :mod:`~crowd.background.aggregation`: the aggregation run job, which uses all of the above.

The worker bootstrap (``workers/bootstrap.py``) configures the connections and runs the jobs.
"""
