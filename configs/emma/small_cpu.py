# A narrow U-Fuser for CPU: trains on the synthetic default in a few minutes on two idle
# cores (600 iterations of 4 patches). Same loss and transform group as the paper (the
# equivariance term runs F and both sensing nets on the 10x batch, which is what costs);
# 32x32 patches, a larger learning rate with gradient clipping (a too-large step can
# saturate the output sigmoid at the trivially equivariant constant image), and the
# x0.5 step decay for the last epochs.
_base_ = ["./paper.py"]

channels = (8, 8, 16, 16)
heads = 4
patch_size = 32
stride = 32
max_patches = 400
epochs = 6
batch_size = 4
lr = 1.5e-3
lr_step = 4

model = dict(fuser=dict(channels=channels, heads=heads))
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(patch_size=patch_size, stride=stride, max_patches=max_patches),
)
train_cfg = dict(max_epochs=epochs)
optim_wrapper = dict(optimizer=dict(lr=lr), clip_grad=dict(max_norm=1.0))
param_scheduler = [dict(type="StepLR", by_epoch=True, step_size=lr_step, gamma=0.5)]
default_hooks = dict(logger=dict(interval=25))
