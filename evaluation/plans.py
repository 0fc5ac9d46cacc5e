"""The study planner's staff page as a kept background job (``core.jobs``): a pilot
runs a model on every paired image, which can take minutes on a large study.

A plan is found by its test set and its choices; the page shows the newest one for them
(its progress while it is computed), and computes a new one when there is none yet or the
last one failed.
"""
from __future__ import annotations

import hashlib
import json

import numpy as np

from annotator.models import TestSet
from core import jobs
from core.errors import InputError
from core.models import Job

from . import planning, services

KIND = "plan"
# images per annotator on the page's curves: from a few dozen to many thousands
CURVE_IMAGES = np.unique(np.round(np.geomspace(20, 20_000, 40)).astype(int)).tolist()


def plan_key(options: dict) -> str:
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


def compute(job: Job, progress) -> dict:
    """The job's handler: the pilot's components, the table and the power curves."""
    options = job.options
    try:
        margin = services.check_margin(options.get("margin"))
        components = services.pilot_components(job.testset, options["model"], options.get("labels"),
                                               options["min_images"], progress)
    except services.BenchmarkError as err:
        raise InputError(str(err)) from None
    progress("planning")
    difference = components.difference if options.get("difference") is None else options["difference"] / 100
    alpha = options["alpha"] / 2 if margin is not None else options["alpha"]
    rows = planning.plan(components, options["annotators"], difference, options["power"], alpha, margin)
    curves = {str(j): [planning.power(components, j, k, difference, alpha, margin) for k in CURVE_IMAGES]
              for j in options["annotators"]}
    return {
        "components": vars(components), "difference": difference, "alpha": alpha, "margin": margin,
        "target": options["power"], "rows": [vars(row) for row in rows],
        "curve_images": CURVE_IMAGES, "curves": curves,
    }


def request_plan(testset: TestSet, options: dict, user=None) -> Job:
    job = (Job.objects.filter(kind=KIND, testset=testset, key=plan_key(options)).order_by("-created_at", "-id")
           .first())
    if job is not None:
        job = jobs.current(job)
        if job.status != Job.Status.FAILED:
            return job
    return jobs.start(jobs.create(KIND, testset=testset, key=plan_key(options), options=options, user=user))
