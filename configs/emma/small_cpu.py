# A narrow U-Fuser for CPU: trains on the synthetic default in a few minutes on two idle
# cores (the equivariance term runs F and both sensing nets on a 10x batch, which is what
# costs). Same loss and transform group as the paper; a larger learning rate because the
# run lasts about a hundred iterations.
_base_ = ["./paper.py"]

channels = (8, 8, 16, 16)
heads = 4
patch_size = 64
stride = 48
max_patches = 96
epochs = 5
batch_size = 4
lr = 1e-3
lr_step = 4

model = dict(fuser=dict(channels=channels, heads=heads))
train_dataloader = dict(
    batch_size=batch_size,
    num_workers=0,
    persistent_workers=False,
    dataset=dict(patch_size=patch_size, stride=stride, max_patches=max_patches),
)
train_cfg = dict(max_epochs=epochs)
optim_wrapper = dict(optimizer=dict(lr=lr))
param_scheduler = [dict(type="StepLR", by_epoch=True, step_size=lr_step, gamma=0.5)]
default_hooks = dict(logger=dict(interval=5))
