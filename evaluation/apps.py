from django.apps import AppConfig


class EvaluationConfig(AppConfig):
    name = "evaluation"
    verbose_name = "Evaluation"

    def ready(self):
        from annotator.dashboard import add_section
        from core import jobs

        add_section("evaluation/_dashboard_agreement.html", dashboard_agreement)
        jobs.register("benchmark", benchmark_job)
        jobs.register("plan", plan_job)


def dashboard_agreement(testset) -> dict:
    """The agreement figures of ``testset`` for its entry on the annotator's dashboard."""
    # Imported when the dashboard is shown: the services load PyTorch, which no command
    # needs at start-up.
    from .services import agreement_summary

    return agreement_summary(testset)


def benchmark_job(job, progress) -> dict:
    """The staff report page's background job (``evaluation.report_jobs``)."""
    from .report_jobs import compute

    return compute(job, progress)


def plan_job(job, progress) -> dict:
    """The study planner page's background job (``evaluation.plans``)."""
    from .plans import compute

    return compute(job, progress)
