#!/usr/bin/env python3
"""Exports torchvision architectures (random weights) to ONNX and computes their reference
guided-backprop, gradient and Grad-CAM maps in PyTorch (float64), for checking the explain mirror.

Guided backprop is applied the way Captum cannot: by replacing F.relu / F.hardtanh(0, 6)
themselves, so functional ReLUs (DenseNet, GoogLeNet) and ReLU6 modules are all covered.

Usage: /usr/bin/python3 torchvision_guided_backprop.py [--half] [--opset N] OUT_DIR [ARCH ...]   (needs Debian's python3-torch,
python3-torchvision; writes OUT_DIR/ARCH/{model.onnx,input.npy,guided_backprop.npy,gradient.npy,grad_cam.npy,meta.json};
ARCH may be "modern" for the transformer and newer-CNN set of issue 18; the default opset is 13;
--half exports in float16 throughout, its weights rounded to float16 first so the float64 maps are of the same weights)

Grad-CAM is taken at the last 4-D rectifier output with more than one cell (or CAM_MODULES), the service's default
layer (explain.defaultLayer); CAM_MODULES names it for the architectures without rectifiers.
"""
import json
import os
import sys

import numpy as np
import torch
import torch.nn.functional as F
import torchvision.models as models

ARCHS = ["resnet18", "resnet50", "resnext50_32x4d", "mobilenet_v2", "mobilenet_v3_small", "densenet121", "squeezenet1_0",
         "efficientnet_b0", "googlenet", "shufflenet_v2_x1_0", "regnet_y_400mf", "mnasnet0_5", "alexnet"]
MODERN = ["vit_b_16", "swin_t", "convnext_tiny", "efficientnet_v2_s", "regnet_y_400mf", "resnext50_32x4d", "wide_resnet50_2",
          "vgg11_bn", "inception_v3", "mobilenet_v3_large", "mnasnet1_0", "shufflenet_v2_x0_5"]
SIZE = {"inception_v3": 299}


class GuidedRectifier(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, upper):
        ctx.save_for_backward(x)
        ctx.upper = upper
        return x.clamp(min=0) if upper is None else x.clamp(0, upper)

    @staticmethod
    def backward(ctx, grad):
        (x,) = ctx.saved_tensors
        gate = x > 0 if ctx.upper is None else (x > 0) & (x < ctx.upper)
        return grad.clamp(min=0) * gate, None


_relu, _hardtanh = torch.relu, F.hardtanh
GUIDED = {"on": False}
LAST_RECTIFIED = {"on": False, "value": None}  # the last 4-D rectifier output, for Grad-CAM


def rectified(y):
    if LAST_RECTIFIED["on"] and y.dim() == 4 and y.shape[2] * y.shape[3] > 1:  # a 1x1 map (squeeze-excitation) locates nothing
        y.retain_grad()
        LAST_RECTIFIED["value"] = y
    return y


def relu(x, inplace=False):
    return rectified(GuidedRectifier.apply(x, None) if GUIDED["on"] else _relu(x))


def hardtanh(x, min_val=-1.0, max_val=1.0, inplace=False):
    if GUIDED["on"] and min_val == 0:
        return rectified(GuidedRectifier.apply(x, max_val))
    y = _hardtanh(x, min_val, max_val, False)
    return rectified(y) if min_val == 0 else y


F.relu, F.hardtanh, torch.relu = relu, hardtanh, relu
torch.nn.functional.relu6 = lambda x, inplace=False: hardtanh(x, 0.0, 6.0, inplace)


def build(arch):
    torch.manual_seed(0)
    kwargs = {"aux_logits": False, "init_weights": True} if arch in ("googlenet", "inception_v3") else {}
    model = getattr(models, arch)(weights=None, **kwargs).eval()
    # torchvision zero-initialises some classifier heads (ViT): all logits would be 0 and every map empty.
    for head in [m for name, m in model.named_modules() if name.startswith("heads") and isinstance(m, torch.nn.Linear)]:
        torch.nn.init.normal_(head.weight, std=0.02)
    # Random biases where torchvision starts them at zero: with zero biases ConvNeXt's stem and
    # LayerNorms make the model scale-invariant near the zero input, and integrated gradients' path
    # from that baseline then starts with a jump no step size resolves.
    for m in model.modules():
        if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)) and m.bias is not None and not m.bias.any():
            torch.nn.init.uniform_(m.bias, -0.1, 0.1)
    # Random but non-degenerate batch-norm statistics, so the maps are not trivially uniform.
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.1, 0.1)
            m.running_var.uniform_(0.5, 1.5)
    return model


def attribution(model, x, guided):
    GUIDED["on"] = guided
    try:
        x = x.clone().requires_grad_(True)
        logits = model(x)
        target = int(logits.argmax(1))
        logits[0, target].backward()
        return x.grad[0].numpy().astype(np.float32), target, float(logits[0, target])
    finally:
        GUIDED["on"] = False


# Without rectifiers, Grad-CAM is taken where pytorch-grad-cam's documentation puts it (and where
# the service's default lands): ViT at the last block's first LayerNorm, its tokens reshaped to the
# patch grid without the class token (pytorch-grad-cam's reshape_transform); Swin after its final
# permute to [N, C, h, w]; ConvNeXt and EfficientNet-V2 at the end of their features.
CAM_MODULES = {
    "vit_b_16": lambda m: m.encoder.layers[-1].ln_1,
    "swin_t": lambda m: m.permute,
    "convnext_tiny": lambda m: m.features,
    "efficientnet_v2_s": lambda m: m.features,
}


def to_grid(a):
    """[N, 1 + h*w, C] tokens to [N, C, h, w]; feature maps as they are."""
    if a.dim() == 3:
        side = int(round((a.shape[1] - 1) ** 0.5))
        a = a[:, 1:, :].reshape(a.shape[0], side, side, a.shape[2]).permute(0, 3, 1, 2)
    return a


def grad_cam(model, x, arch):
    """ReLU(sum_c mean_hw(dscore/dA_c) A_c) at the last rectifier output (or CAM_MODULES), bilinear to the input size."""
    LAST_RECTIFIED.update(on=True, value=None)
    captured = {}
    hook = None
    if arch in CAM_MODULES:
        def keep(module, inputs, output):
            output.retain_grad()
            captured["value"] = output
        hook = CAM_MODULES[arch](model).register_forward_hook(keep)
    try:
        logits = model(x)
        layer = captured.get("value", LAST_RECTIFIED["value"])
        if layer is None:
            return None
        logits[0, int(logits.argmax(1))].backward()
        activation, gradient = to_grid(layer), to_grid(layer.grad)
        weights = gradient.mean((2, 3), keepdim=True)
        cam = F.relu((weights * activation).sum(1, keepdim=True)).detach()
        return F.interpolate(cam, size=x.shape[2:], mode="bilinear", align_corners=False)[0, 0].numpy()
    finally:
        LAST_RECTIFIED.update(on=False, value=None)
        if hook is not None:
            hook.remove()


def main(out, archs, opset, half=False):
    for arch in archs:
        size = SIZE.get(arch, 224)
        x = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
        model = half_weights(build(arch)) if half else build(arch)
        write_reference(os.path.join(out, arch), arch, model, x, opset, to_float16 if half else None, fold=not half)


def half_weights(model):
    """Rounds the model's weights to values float16 holds exactly, so that its float16 export
    (to_float16, without folding) and its float64 maps share them."""
    for t in list(model.parameters()) + list(model.buffers()):
        if t.is_floating_point():
            t.data = t.data.half().float()
    return model


def to_float16(path):
    """Rewrites an export in float16 throughout (weights, constants, casts, input and output), as a
    float16 conversion of a model does; its weights must be float16 values already."""
    import onnx
    from onnx import numpy_helper, TensorProto
    m = onnx.load(path)
    g = m.graph
    half = lambda t: numpy_helper.from_array(numpy_helper.to_array(t).astype(np.float16), t.name)
    for t in g.initializer:
        if t.data_type == TensorProto.FLOAT:
            t.CopyFrom(half(t))
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.TENSOR and a.t.data_type == TensorProto.FLOAT:
                a.t.CopyFrom(half(a.t))
            if n.op_type == "Cast" and a.name == "to" and a.i == TensorProto.FLOAT:
                a.i = TensorProto.FLOAT16
    for v in list(g.input) + list(g.output):
        if v.type.tensor_type.elem_type == TensorProto.FLOAT:
            v.type.tensor_type.elem_type = TensorProto.FLOAT16
    del g.value_info[:]
    onnx.checker.check_model(m)
    onnx.save(m, path)


def write_reference(folder, arch, model, x, opset, rewrite=None, fold=True):
    """Exports model to folder/model.onnx (then rewrite(path), where given) and writes beside it the
    input, PyTorch's float64 guided-backprop, gradient and Grad-CAM maps and meta.json. Without fold,
    batch norms stay nodes of their own (not folded into the convolutions' weights)."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, "model.onnx")
    torch.onnx.export(model, x, path, opset_version=opset, input_names=["input"], output_names=["logits"],
                      dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}, do_constant_folding=fold,
                      # (PRESERVE, of a model in eval mode: its batch norms as they are, not fused into the convolutions.)
                      training=torch.onnx.TrainingMode.EVAL if fold else torch.onnx.TrainingMode.PRESERVE)
    if rewrite is not None:
        rewrite(path)
    # float32 maps too: how far PyTorch's own float32 lands from the float64 truth is the
    # noise floor a float32 implementation can expect on this architecture.
    guided32, _, _ = attribution(model, x, guided=True)
    gradient32, _, _ = attribution(model, x, guided=False)
    cam32 = grad_cam(model, x, arch)
    model64 = model.double()
    guided, target, score = attribution(model64, x.double(), guided=True)
    gradient, _, _ = attribution(model64, x.double(), guided=False)
    cam = grad_cam(model64, x.double(), arch)
    floor = {"guided_backprop_f32_rel_max": rel(guided32, guided), "gradient_f32_rel_max": rel(gradient32, gradient)}
    if cam is not None:
        np.save(os.path.join(folder, "grad_cam.npy"), cam)
        floor["grad_cam_f32_rel_max"] = rel(cam32, cam)
    np.save(os.path.join(folder, "input.npy"), x.numpy())
    np.save(os.path.join(folder, "guided_backprop.npy"), guided)
    np.save(os.path.join(folder, "gradient.npy"), gradient)
    with open(os.path.join(folder, "meta.json"), "w") as f:
        json.dump({"arch": arch, "opset": opset, "target": target, "score": score, **floor}, f)
    print(arch, "target", target, "score", round(score, 4), floor, flush=True)


def rel(a, b):
    return float(np.abs(a - b).max() / np.abs(b).max())


if __name__ == "__main__":
    args = sys.argv[1:]
    opset, half = 13, False
    if args[:1] == ["--half"]:
        half, args = True, args[1:]
    if args[:1] == ["--opset"]:
        opset, args = int(args[1]), args[2:]
    chosen = args[1:] or ARCHS
    if chosen == ["modern"]:
        chosen = MODERN
    main(args[0], chosen, opset, half)
