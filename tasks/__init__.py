"""Built-in tasks, one per module or folder, each registered through the ``unlearn_bench`` entry-point
group exactly like a third-party plugin."""
