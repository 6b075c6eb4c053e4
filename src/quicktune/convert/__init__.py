"""Weight converters: checkpoints published in other formats -> state dicts of our torch modules.

cifar.py   akamaster/pytorch_resnet_cifar10 `.th` files -> `quicktune.models.CifarResNet`
tflite.py  a TFLite flatbuffer -> its convolution/FC layers as dequantised float arrays
coral.py   Coral (quantised TFLite) MobileNet V1/V2 -> timm mobilenetv1/mobilenetv2
"""
