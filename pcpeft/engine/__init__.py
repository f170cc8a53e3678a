"""From a recipe to a run folder.

* :mod:`.recipe`: recipe files (YAML with ``_base_`` and overrides), the shipped recipes, the official repositories'
  dialect, and the schema that validates a recipe into typed settings;
* :mod:`.data`: the data-set registry and its typed sections, batch augmentation, the checks of data against a
  recipe and a model, validation splits carved from the training data;
* :mod:`.training`: the one training loop with its hooks and tasks, fine-tuning and pre-training, the model set-up,
  optimiser and schedule, precision, seeding, prediction and metrics;
* :mod:`.runs`: run folders (naming, locking), their atomic training state, loading a finished run as a model,
  classifying files with it, shipping its backbone.
"""
