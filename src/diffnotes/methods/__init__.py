"""Each paper's training loss and sampling specifics, one small module per formulation.

A loss is a callable ``loss(model, x0, class_labels=None) -> per-sample loss`` where ``model`` is
a denoiser ``D(x; sigma, class_labels)`` (a ``diffnotes.precond`` wrapper); the training loop
(``diffnotes.train.fit``) knows none of them. ``methods.edm`` holds the VP, VE and EDM losses of
Karras et al. 2022 (Sec. 5, Table 1).
"""
