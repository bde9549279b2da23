"""Runtime helpers shared by the latency tables (`latency`) and deployment (`deploy`): calibration inputs, ONNX
static INT8 quantisation (onnxruntime), and OpenVINO model conversion / NNCF quantisation / compilation. They sit
below both, so that `latency` never imports `deploy`."""
