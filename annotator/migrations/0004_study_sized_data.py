"""Study-sized data: each vote names its test set (filled in from its image), indexes for
the staff pages and the labelling page, and the background jobs table."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

FILL_VOTE_TESTSET = """
UPDATE annotator_vote SET testset_id = (
    SELECT annotator_image.testset_id FROM annotator_image WHERE annotator_image.id = annotator_vote.image_id
)
"""


class Migration(migrations.Migration):

    dependencies = [
        ('annotator', '0003_repeated_file'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name='vote',
            name='testset',
            field=models.ForeignKey(db_index=False, editable=False, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='votes', to='annotator.testset'),
        ),
        migrations.RunSQL(FILL_VOTE_TESTSET, migrations.RunSQL.noop),
        migrations.AlterField(
            model_name='vote',
            name='testset',
            field=models.ForeignKey(db_index=False, editable=False, on_delete=django.db.models.deletion.CASCADE, related_name='votes', to='annotator.testset'),
        ),
        migrations.AlterField(
            model_name='vote',
            name='annotator',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='votes', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AlterField(
            model_name='vote',
            name='image',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='votes', to='annotator.image'),
        ),
        migrations.AddIndex(
            model_name='image',
            index=models.Index(fields=['testset', 'id'], name='image_testset_id'),
        ),
        migrations.AddIndex(
            model_name='vote',
            index=models.Index(fields=['testset', 'annotator'], name='vote_testset_annotator'),
        ),
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
                ('created_by', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL)),
                ('testset', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='jobs', to='annotator.testset')),
            ],
            options={
                'ordering': ['-created_at', '-id'],
                'indexes': [models.Index(fields=['kind', 'testset', 'key', 'created_at'], name='job_lookup')],
            },
        ),
    ]
