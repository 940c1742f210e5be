"""Sampling at scale: tens of thousands of images over many Ray workers, resumable.

    shards.py   the job (everything that decides the bytes) and its fixed plan of shards;
                each sample's label and noise from (seed, i) alone
    store.py    the output folder: job.json, shard files written atomically, the resume check
    workers.py  the Ray actor: one Pipeline per worker, one shard per call
    cluster.py  joining a Ray cluster or starting a local one, and sizing the workers
    merge.py    shards -> one ADM `.npz` (streamed, constant memory) + sample-manifest.json
    dispatch.py the Ray side of a run: workers started, shards kept queued and saved as they finish
    run.py      the driver: validate (`SampleOptions`), plan, calibrate, dispatch, merge, summarise

`ddt-export sample` (cli.py) is the command line over `run.sample_many`.
"""
