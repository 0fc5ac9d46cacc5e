"""Job now belongs to the core app (core/migrations/0001_initial.py); its table stays."""
from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('annotator', '0007_job_attempts'),
        ('core', '0001_initial'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[migrations.DeleteModel(name='Job')],
        ),
    ]
