"""``vrnn bench``: the library's training step against the textbook per-step one, side by side.

In one process and alternating (so both see the same machine load), it trains the
reference implementation of :mod:`vrnn.lab.speed.reference` (one Python iteration per time
step, every head inside the loop) and the library's model, both from the same initial
parameters on the same synthetic batches, and reports for each:

* training steps per second (median over alternating repeats) and the ratio library/reference;
* achieved GFLOP/s: floating-point operations of one training step (forward + backward),
  counted by ``torch.utils.flop_counter.FlopCounterMode`` (matrix products; elementwise
  work is not counted), times steps per second;
* the fraction of a large square matrix product's rate measured in the same run;
* peak memory of one training step: on CPU the growth of the peak resident set size
  (VmHWM) of a fresh subprocess over one step, after a tiny warm-up step that allocates
  gradients and Adam state (so the figure is activations and temporaries); on GPU the
  growth of ``torch.cuda.max_memory_allocated`` over the step.

It also measures how training time and memory scale with the sequence length T and how
importance-sampled evaluation scales with the number of samples K (the K samples run as
one K·B batch; K separate passes shown for comparison).

Modules: :mod:`~vrnn.lab.speed.configs` (the measured configurations), :mod:`~vrnn.lab.speed.reference`
(the per-step baseline), :mod:`~vrnn.lab.speed.measure` (timing, FLOP counting, memory probes),
:mod:`~vrnn.lab.speed.bench` (:func:`~vrnn.lab.speed.bench.run_bench`: all the measurements as one dict)
and :mod:`~vrnn.lab.speed.report` (markdown and text).
"""
