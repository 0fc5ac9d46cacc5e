"""Job moves here from annotator: the table stays (annotator_job), only Django's record of
which app owns the model changes."""
import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('annotator', '0007_job_attempts'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            database_operations=[],
            state_operations=[
                migrations.CreateModel(
                    name='Job',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('kind', models.CharField(max_length=40)),
                        ('key', models.CharField(blank=True, max_length=64)),
                        ('options', models.JSONField(blank=True, default=dict)),
                        ('status', models.CharField(choices=[('queued', 'Queued'), ('running', 'Running'), ('done', 'Done'), ('failed', 'Failed')], default='queued', max_length=10)),
                        ('stage', models.CharField(blank=True, max_length=200)),
                        ('done', models.PositiveBigIntegerField(default=0)),
                        ('total', models.PositiveBigIntegerField(blank=True, null=True)),
                        ('result_json', models.TextField(blank=True)),
                        ('error', models.TextField(blank=True)),
                        ('created_at', models.DateTimeField(auto_now_add=True)),
                        ('started_at', models.DateTimeField(blank=True, null=True)),
                        ('finished_at', models.DateTimeField(blank=True, null=True)),
                        ('heartbeat_at', models.DateTimeField(blank=True, null=True)),
                        ('attempts', models.PositiveSmallIntegerField(default=0)),
                        ('task_id', models.CharField(blank=True, max_length=64)),
                        ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                        ('testset', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='jobs', to='annotator.testset')),
                    ],
                    options={
                        'db_table': 'annotator_job',
                        'ordering': ['-created_at', '-id'],
                        'indexes': [models.Index(fields=['kind', 'testset', 'key', 'created_at'], name='job_lookup')],
                    },
                ),
            ],
        ),
    ]
