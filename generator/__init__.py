"""tinygen: a trained model in, a complete TFLite-Micro firmware project out.

The packages are the pipeline's stages, each using only those listed before it:

    model/    the model file -> .tflite bytes -> what the flatbuffer holds; quantization;
              the TFLite-Micro runtime on the host, in a child process
    library/  what each board's pinned TFLite-Micro has (op tables) and computes (numerics,
              with the model rewrites that make it compute what the model means)
    memory/   the tensor arena a board's library needs: memory plan, kernels' scratch,
              the allocator's persistent data
    boards/   the board catalog, the runtime's own size, the fit, the latency estimate
    check/    golden vectors for the firmware's self-test, `verify`, output differences
    pipeline  chains them for one model and board (`prepare`)
    output/   the project on disk (context, templates, firmware core), reports, profiles
    cli       the `tinygen` command

Installed as the import package `tinygen` (the source folder is `generator/`).
"""

__version__ = "0.1.0"
