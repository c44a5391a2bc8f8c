"""The model: a file (.keras, .h5, SavedModel, .tflite) -> .tflite bytes (converted in a child
process) -> what the flatbuffer holds (`analyze`: operators, tensors, quantization), its cost
per layer, the user's calibration data and labels, and the real TFLite-Micro runtime on the
host (`tflm_host`, a child process) with the quantization the firmware mirrors."""
