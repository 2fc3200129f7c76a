"""The nuclei-teacher applications: ``rckd teacher train``, ``eval`` and ``predict``.

The teachers themselves (models, registry, post-processing) live in :mod:`rckd.models.teachers`;
this package trains them (:mod:`~rckd.teacher.train`, crops from :mod:`~rckd.teacher.sampling`),
scores them (:mod:`~rckd.teacher.evaluate`) and caches their responses for pretraining
(:mod:`~rckd.teacher.predict`), beside :mod:`rckd.pretrain` and :mod:`rckd.finetune`.
"""
