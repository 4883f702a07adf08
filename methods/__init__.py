"""Built-in unlearning methods, one per module, each registered through the ``unlearn_bench``
entry-point group exactly like a third-party plugin."""
