"""Scripts beside the project's two front doors (``manage.py`` and ``python -m ferml``).

The shell scripts here are run as they are: for users ``benchmark_speed.sh``,
``train_deep_gpu.sh`` and ``recipe_comparison.sh``; for ``make`` ``ensure-venv.sh`` and
``run-tests.sh``. ``scripts.fixtures`` rebuilds the data committed with the project; its
modules run from the repository root with ``python -m``, e.g.
``.venv/bin/python -m scripts.fixtures.make_demo_study``.
"""
