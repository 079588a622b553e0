"""
A small CNN trained from scratch in NumPy
=========================================

A two-layer convolutional network learns to read the 8x8 handwritten digits
that ship with scikit-learn (no download), with cconv's 4-D layer
(:func:`cconv.conv2d_forward` and :func:`cconv.conv2d_backward`) for the
convolutions and a few lines of NumPy for the rest: ReLU, a dense layer,
softmax cross-entropy and SGD with momentum.  No deep-learning framework is
involved.

When PyTorch is installed, the same network is built in PyTorch from the
same initial weights and trained on the same batches, and every step is
compared: the loss, and every parameter after the update.
"""

import time

import matplotlib.pyplot as plt
import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import cconv
from cconv.testing import rel_error

# %%
# The data: 1797 digits of 8x8 pixels, grey levels 0-16, as (N, C, H, W)
# images with one channel.  A quarter is held out for testing.
digits = load_digits()
images = (digits.images / 16.0)[:, None]  # (1797, 1, 8, 8), float64
x_train, x_test, y_train, y_test = train_test_split(
    images, digits.target, test_size=0.25, random_state=0, stratify=digits.target
)
print(f"train {x_train.shape}, test {x_test.shape}")

# %%
# The network.  ``conv1``: 8 filters of 3x3, zero padding 1, so the 8x8 size
# is kept; ``conv2``: 16 filters of 3x3x8 with stride 2, which halves the
# size to 4x4; then a dense layer from the 16x4x4 = 256 features to the 10
# classes.  Weights are drawn with He's scaling.  Everything is float64, so
# that the comparison with PyTorch below is to rounding, not to float32
# drift (cconv computes float32 natively too).
rng = np.random.default_rng(0)


def he(shape, fan_in):
    return rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)


initial = {
    "w1": he((8, 1, 3, 3), 1 * 9), "b1": np.zeros(8),
    "w2": he((16, 8, 3, 3), 8 * 9), "b2": np.zeros(16),
    "w3": he((10, 256), 256), "b3": np.zeros(10),
}


def forward(p, x):
    """Logits, and what the backward pass needs."""
    h1, cache1 = cconv.conv2d_forward(x, p["w1"], p["b1"], padding=1)
    a1 = np.maximum(h1, 0)
    h2, cache2 = cconv.conv2d_forward(a1, p["w2"], p["b2"], stride=2, padding=1)
    a2 = np.maximum(h2, 0)
    flat = a2.reshape(len(x), -1)
    return flat @ p["w3"].T + p["b3"], (h1, cache1, h2, cache2, flat)


def loss_and_grads(p, x, labels):
    """Mean softmax cross-entropy of a batch, and its gradient for every parameter."""
    logits, (h1, cache1, h2, cache2, flat) = forward(p, x)
    z = logits - logits.max(axis=1, keepdims=True)
    log_prob = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    rows = np.arange(len(x))
    loss = -log_prob[rows, labels].mean()
    dlogits = np.exp(log_prob)
    dlogits[rows, labels] -= 1
    dlogits /= len(x)
    g = {"w3": dlogits.T @ flat, "b3": dlogits.sum(axis=0)}
    dh2 = (dlogits @ p["w3"]).reshape(h2.shape) * (h2 > 0)  # through the dense layer and ReLU
    da1, g["w2"], g["b2"] = cconv.conv2d_backward(dh2, cache2)
    _, g["w1"], g["b1"] = cconv.conv2d_backward(da1 * (h1 > 0), cache1)
    return loss, g


def accuracy(p, x, labels):
    return float(np.mean(forward(p, x)[0].argmax(axis=1) == labels))


# %%
# Training: SGD with momentum 0.9 (PyTorch's update rule), learning rate
# 0.05, batches of 32, 12 epochs.  The batch order is drawn once and kept, so
# that PyTorch can replay it.  The layers are tiny (32 images of 8x8 per
# call, well under a millisecond of work), too small to share between
# threads: the training runs on one (:func:`cconv.threads`), and PyTorch's
# too.
epochs, batch, lr, momentum = 12, 32, 0.05, 0.9
order = [np.random.default_rng(epoch).permutation(len(x_train)) for epoch in range(epochs)]
batches = [idx[i:i + batch] for idx in order for i in range(0, len(idx), batch)]
steps_per_epoch = len(batches) // epochs

params = {k: v.copy() for k, v in initial.items()}
velocity = {k: np.zeros_like(v) for k, v in params.items()}
losses, test_acc, trajectory = [], [], []
start = time.perf_counter()
with cconv.threads(1):
    for step, idx in enumerate(batches):
        loss, grads = loss_and_grads(params, x_train[idx], y_train[idx])
        for k in params:
            velocity[k] = momentum * velocity[k] + grads[k]
            params[k] -= lr * velocity[k]
        losses.append(loss)
        trajectory.append({k: v.copy() for k, v in params.items()})
        if (step + 1) % steps_per_epoch == 0:
            test_acc.append(accuracy(params, x_test, y_test))
elapsed = time.perf_counter() - start
print(f"{len(batches)} steps in {elapsed:.1f} s; final training loss {np.mean(losses[-steps_per_epoch:]):.3f}")
print(f"test accuracy after each epoch: {', '.join(f'{a:.3f}' for a in test_acc)}")

# %%
# The same network in PyTorch, step by step
# -----------------------------------------
# ``torch.nn.functional.conv2d`` with the same weights, the same batches and
# ``torch.optim.SGD`` with the same momentum.  After every step the loss and
# every parameter are compared with cconv's run (the notebook's
# :func:`~cconv.testing.rel_error`: 0 for equal arrays, 1 for unrelated
# ones).  PyTorch is optional: without it this part is skipped.
try:
    import torch
except ImportError:
    torch = None
    print("PyTorch is not installed: the step-by-step comparison is skipped (pip install torch)")

torch_losses, loss_err, param_err = [], [], []
if torch is not None:
    import torch.nn.functional as F

    torch.set_num_threads(1)
    tp = {k: torch.tensor(v, requires_grad=True) for k, v in initial.items()}
    opt = torch.optim.SGD(tp.values(), lr=lr, momentum=momentum)
    for step, idx in enumerate(batches):
        x = torch.from_numpy(x_train[idx])
        h = F.relu(F.conv2d(x, tp["w1"], tp["b1"], padding=1))
        h = F.relu(F.conv2d(h, tp["w2"], tp["b2"], stride=2, padding=1))
        loss = F.cross_entropy(F.linear(h.flatten(1), tp["w3"], tp["b3"]), torch.from_numpy(y_train[idx]))
        opt.zero_grad()
        loss.backward()
        opt.step()
        torch_losses.append(loss.item())
        loss_err.append(rel_error(losses[step], loss.item()))
        param_err.append(max(rel_error(trajectory[step][k], v.detach().numpy()) for k, v in tp.items()))
    print(f"PyTorch {torch.__version__}, {len(batches)} steps: largest relative difference "
          f"of the loss {max(loss_err):.1e}, of a parameter after an update {max(param_err):.1e}")
    assert max(loss_err) < 1e-7 and max(param_err) < 1e-7

# %%
# The figure: the training loss of every step (PyTorch's on top when it
# ran), the test accuracy after each epoch, and test digits with the
# network's answer (red where it is wrong).
fig = plt.figure(figsize=(12, 7))
grid = fig.add_gridspec(3, 8, height_ratios=[2.6, 1, 1])
ax = fig.add_subplot(grid[0, :4])
ax.plot(np.arange(1, len(losses) + 1) / steps_per_epoch, losses, lw=0.8, alpha=0.6, label="cconv + NumPy")
ax.plot(np.arange(1, epochs + 1), np.reshape(losses, (epochs, -1)).mean(axis=1), "C3o-", label="epoch mean")
if torch_losses:
    ax.plot(np.arange(1, len(losses) + 1) / steps_per_epoch, torch_losses, "k:", lw=1,
            label=f"PyTorch (largest difference {max(loss_err):.0e})")
ax.set_yscale("log")
ax.set_xlabel("epoch")
ax.set_ylabel("training loss (cross-entropy)")
ax.set_title("Training loss, every step")
ax.legend()
ax = fig.add_subplot(grid[0, 4:])
ax.plot(np.arange(1, epochs + 1), test_acc, "o-")
ax.set_ylim(0.8, 1.0)
ax.set_xlabel("epoch")
ax.set_ylabel("test accuracy")
ax.set_title(f"Test accuracy: {test_acc[-1]:.1%} of {len(y_test)} held-out digits")
ax.grid(alpha=0.3)
predicted = forward(params, x_test)[0].argmax(axis=1)
wrong = np.flatnonzero(predicted != y_test)[:8]
right = np.flatnonzero(predicted == y_test)[:16 - len(wrong)]
for i, j in enumerate(np.concatenate([wrong, right])):
    ax = fig.add_subplot(grid[1 + i // 8, i % 8])
    ax.imshow(x_test[j, 0], cmap="gray_r")
    miss = predicted[j] != y_test[j]
    ax.set_title(f"read {predicted[j]}" + (f", is {y_test[j]}" if miss else ""),
                 color="red" if miss else "black", fontsize=10)
    ax.axis("off")
fig.tight_layout()
