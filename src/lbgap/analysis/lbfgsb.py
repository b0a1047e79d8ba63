"""L-BFGS-B for box constraints in torch: scipy's algorithm, run where the model is.

`scipy.optimize.minimize(method="L-BFGS-B")` keeps x on the CPU as float64 numpy arrays and
spends seconds per run on per-variable Python handling of the bounds for a million variables.
This module runs the same algorithm (L-BFGS-B 3.0 as scipy ships it: Byrd, Lu, Nocedal and Zhu
1995; Zhu et al. 1997; Morales and Nocedal 2011) on float64 tensors on any device, vectorised:

- compact limited-memory matrix with m corrections, the update skipped when
  s'y <= eps * (-g'd) (scipy's `dr <= epsmach * ddum`); memory refreshed when a factorization
  fails, as scipy does;
- generalized Cauchy point along the projected gradient, breakpoints visited in increasing
  order; scipy's one-at-a-time heap loop becomes cumulative sums over the breakpoints in
  increasing order (the smallest few hundred picked by `topk`, more only when the search gets
  past them), stopping at the first segment holding the minimizer and restarting where
  scipy's safeguard f'' >= eps f''_0 applies;
- subspace minimization by the direct primal method with 3.0's projection and backtracking;
- the More-Thuente line search `dcsrch` (ftol 1e-3, gtol 0.9, xtol 0.1), step bounded by the
  box (1 at the first iteration), first trial step 1 (the box makes every problem "boxed");
- scipy's stopping: `maxiter` iterations, `maxfun` evaluations, projected gradient <= gtol,
  relative reduction <= ftol (with ftol = gtol = 0, only a step that does not lower f stops).

Only finite boxes l <= u are handled (what Keskar's sharpness needs); variables with l = u stay
fixed. Scalars follow scipy's formulas operation by operation. Where scipy adds one term at a
time (the Cauchy point's f', f'' and step sums), a cumulative sum over the same terms rounds the
same way on the CPU; the products with S and Y, the 2m x 2m middle matrix (formed once per
update instead of applied by triangular solves) and the subspace matrix (formed from S and Y
directly, not updated incrementally) round differently from scipy's BLAS and Fortran-order
loops.

Tolerance: on float64 problems (tests/test_lbfgsb.py: a box-constrained convex quadratic with active
bounds, sines plus a quadratic with the memory wrapping around, phi of a small MLP in the full space
and in a subspace) x and f match scipy's iterate by iterate to 1e-10 relative over 10-15 iterations,
with the same iteration and evaluation counts and stopping message; most are bit-identical. In a
sweep of 40 random problems (quadratics, sines, logistic losses; 5-400 variables, m = 2-11, 25
iterations with ftol = gtol = 0) the first 15 iterates agreed to 2e-14; only where runs went on to
convergence at machine precision, where each line search is decided by rounding, did evaluation
counts differ (4 of 40), with the same final f. Rounding-level differences grow only where a
decision of the algorithm (a Cauchy segment test, a line-search branch) is taken by the last bits,
or through the function itself: a float32 network evaluated at x0 + y rounded to float32 turns a
1e-13 difference of the iterates into float32-resolution differences of f (~1e-7 relative), from
which the two runs then continue separately (phi of F1 at the quick scale: 7e-7 relative, README).
On a GPU the cumulative sums and reductions are parallel, so iterates agree to rounding, not bit for
bit.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

EPSMACH = 2.220446049250313e-16  # float64 machine epsilon, as scipy's L-BFGS-B uses it
FTOL, GTOL, XTOL = 1e-3, 0.9, 0.1  # dcsrch's constants in L-BFGS-B

Objective = Callable[[Tensor], tuple[Tensor | float, Tensor]]
Callback = Callable[[Tensor, float], None]

MESSAGES = {
    "grad": "CONVERGENCE: NORM OF PROJECTED GRADIENT <= PGTOL",
    "f": "CONVERGENCE: RELATIVE REDUCTION OF F <= FACTR*EPSMCH",
    "maxfun": "STOP: TOTAL NO. OF F,G EVALUATIONS EXCEEDS LIMIT",
    "maxiter": "STOP: TOTAL NO. OF ITERATIONS REACHED LIMIT",
    "callback": "STOP: CALLBACK REQUESTED HALT",
    "abnormal": "ABNORMAL: ",
}


@dataclass
class Result:
    """What `scipy.optimize.minimize` reports, with x, jac as tensors.

    status: 0 converged, 1 stopped by maxiter or maxfun, 2 otherwise (scipy's warnflag).
    """

    x: Tensor
    fun: float
    jac: Tensor
    nit: int
    nfev: int
    status: int
    message: str

    @property
    def success(self) -> bool:
        return self.status == 0


class _SingularError(Exception):
    """A factorization failed: scipy refreshes the limited memory and restarts the iteration."""


# --------------------------------------------------------------------------- line search


class LineSearch:
    """More-Thuente `dcsrch` / `dcstep` (MINPACK-2) as a reverse-communication state machine.

    The state survives between searches as in scipy's isave/dsave, so even its error path
    (a first step above stpmax) continues from the previous search's interval, as there.
    """

    def __init__(self) -> None:
        self.brackt = False
        self.stage = 1
        self.ginit = self.gtest = self.gx = self.gy = 0.0
        self.finit = self.fx = self.fy = 0.0
        self.stx = self.sty = self.stmin = self.stmax = 0.0
        self.width = self.width1 = 0.0
        self.task = "START"

    def step(self, f: float, g: float, stp: float, stpmin: float, stpmax: float) -> float:
        """One call of dcsrch: returns the next step; `self.task` is FG, CONV, WARN or ERROR."""
        if self.task == "START":
            if stp < stpmin or stp > stpmax or g >= 0.0:
                self.task = "ERROR"
                return stp
            self.brackt = False
            self.stage = 1
            self.finit = f
            self.ginit = g
            self.gtest = FTOL * g
            self.width = stpmax - stpmin
            self.width1 = self.width / 0.5
            self.stx, self.fx, self.gx = 0.0, f, g
            self.sty, self.fy, self.gy = 0.0, f, g
            self.stmin = 0.0
            self.stmax = stp + 4.0 * stp
            self.task = "FG"
            return stp
        ftest = self.finit + stp * self.gtest
        if self.stage == 1 and f <= ftest and g >= 0.0:
            self.stage = 2
        task = "FG"
        if self.brackt and (stp <= self.stmin or stp >= self.stmax):
            task = "WARN"
        if self.brackt and self.stmax - self.stmin <= XTOL * self.stmax:
            task = "WARN"
        if stp == stpmax and f <= ftest and g <= self.gtest:
            task = "WARN"
        if stp == stpmin and (f > ftest or g >= self.gtest):
            task = "WARN"
        if f <= ftest and abs(g) <= GTOL * (-self.ginit):
            task = "CONV"
        if task != "FG":
            self.task = task
            return stp
        if self.stage == 1 and f <= self.fx and f > ftest:
            gt = self.gtest
            fxm, fym = self.fx - self.stx * gt, self.fy - self.sty * gt
            gxm, gym = self.gx - gt, self.gy - gt
            (self.stx, fxm, gxm, self.sty, fym, gym, stp) = self._dcstep(
                self.stx, fxm, gxm, self.sty, fym, gym, stp, f - stp * gt, g - gt
            )
            self.fx, self.fy = fxm + self.stx * gt, fym + self.sty * gt
            self.gx, self.gy = gxm + gt, gym + gt
        else:
            (self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, stp) = self._dcstep(
                self.stx, self.fx, self.gx, self.sty, self.fy, self.gy, stp, f, g
            )
        if self.brackt:
            if abs(self.sty - self.stx) >= 0.66 * self.width1:
                stp = self.stx + 0.5 * (self.sty - self.stx)
            self.width1 = self.width
            self.width = abs(self.sty - self.stx)
            self.stmin = min(self.stx, self.sty)
            self.stmax = max(self.stx, self.sty)
        else:
            self.stmin = stp + 1.1 * (stp - self.stx)
            self.stmax = stp + 4.0 * (stp - self.stx)
        stp = min(max(stp, stpmin), stpmax)
        if self.brackt and (
            stp <= self.stmin or stp >= self.stmax or self.stmax - self.stmin <= XTOL * self.stmax
        ):
            stp = self.stx
        self.task = "FG"
        return stp

    def _dcstep(self, stx, fx, dx, sty, fy, dy, stp, fp, dp):  # noqa: ANN001, ANN202, PLR0913
        """MINPACK-2's safeguarded cubic/quadratic step; returns the updated interval and step."""
        stpmin, stpmax = self.stmin, self.stmax
        sgnd = dp * (dx / abs(dx))
        if fp > fx:
            theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
            s = max(abs(theta), max(abs(dx), abs(dp)))
            gamma = s * math.sqrt((theta / s) ** 2 - (dx / s) * (dp / s))
            if stp < stx:
                gamma = -gamma
            p = (gamma - dx) + theta
            q = ((gamma - dx) + gamma) + dp
            stpc = stx + (p / q) * (stp - stx)
            stpq = stx + ((dx / ((fx - fp) / (stp - stx) + dx)) / 2.0) * (stp - stx)
            stpf = stpc if abs(stpc - stx) < abs(stpq - stx) else stpc + (stpq - stpc) / 2.0
            self.brackt = True
        elif sgnd < 0.0:
            theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
            s = max(abs(theta), max(abs(dx), abs(dp)))
            gamma = s * math.sqrt((theta / s) ** 2 - (dx / s) * (dp / s))
            if stp > stx:
                gamma = -gamma
            p = (gamma - dp) + theta
            q = ((gamma - dp) + gamma) + dx
            stpc = stp + (p / q) * (stx - stp)
            stpq = stp + (dp / (dp - dx)) * (stx - stp)
            stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
            self.brackt = True
        elif abs(dp) < abs(dx):
            theta = 3.0 * (fx - fp) / (stp - stx) + dx + dp
            s = max(abs(theta), max(abs(dx), abs(dp)))
            gamma = s * math.sqrt(max(0.0, (theta / s) ** 2 - (dx / s) * (dp / s)))
            if stp > stx:
                gamma = -gamma
            p = (gamma - dp) + theta
            q = (gamma + (dx - dp)) + gamma
            r = p / q
            if r < 0.0 and gamma != 0.0:
                stpc = stp + r * (stx - stp)
            elif stp > stx:
                stpc = stpmax
            else:
                stpc = stpmin
            stpq = stp + (dp / (dp - dx)) * (stx - stp)
            if self.brackt:
                stpf = stpc if abs(stpc - stp) < abs(stpq - stp) else stpq
                if stp > stx:
                    stpf = min(stp + 0.66 * (sty - stp), stpf)
                else:
                    stpf = max(stp + 0.66 * (sty - stp), stpf)
            else:
                stpf = stpc if abs(stpc - stp) > abs(stpq - stp) else stpq
                stpf = max(stpmin, min(stpmax, stpf))
        elif self.brackt:
            theta = 3.0 * (fp - fy) / (sty - stp) + dy + dp
            s = max(abs(theta), max(abs(dy), abs(dp)))
            gamma = s * math.sqrt((theta / s) ** 2 - (dy / s) * (dp / s))
            if stp > sty:
                gamma = -gamma
            p = (gamma - dp) + theta
            q = ((gamma - dp) + gamma) + dy
            stpf = stp + (p / q) * (sty - stp)
        else:
            stpf = stpmax if stp > stx else stpmin
        if fp > fx:
            sty, fy, dy = stp, fp, dp
        else:
            if sgnd < 0.0:
                sty, fy, dy = stx, fx, dx
            stx, fx, dx = stp, fp, dp
        return stx, fx, dx, sty, fy, dy, stpf


# --------------------------------------------------------------------------- limited memory


class Memory:
    """S and Y in circular buffers (m x n, on the device) and the small matrices of the compact
    form, kept in the oldest-first order scipy uses: S'Y (lower triangle), S'S, theta, and the
    derived middle matrix M (2col x 2col) that scipy applies through `bmv`."""

    def __init__(self, n: int, m: int, like: Tensor) -> None:
        self.m = m
        self.S = torch.empty((m, n), dtype=like.dtype, device=like.device)  # rows < col in use
        self.Y = torch.empty_like(self.S)
        self.sy = torch.zeros((m, m), dtype=like.dtype, device=like.device)
        self.ss = torch.zeros_like(self.sy)
        self.reset()

    def reset(self) -> None:
        self.col = self.head = self.itail = self.iupdat = 0
        self.theta = 1.0
        self.updatd = False
        self.M: Tensor | None = None
        self.wn: Tensor | None = None

    @property
    def order(self) -> Tensor:
        """Buffer rows oldest first (rows 0..col-1 are the ones in use)."""
        idx = [(self.head + j) % self.m for j in range(self.col)]
        return torch.tensor(idx, device=self.S.device, dtype=torch.long)

    def products(self, v: Tensor) -> tuple[Tensor, Tensor]:
        """(Y'v, S'v) oldest first."""
        c, o = self.col, self.order
        return (self.Y[:c] @ v)[o], (self.S[:c] @ v)[o]

    def combine(self, a_y: Tensor, a_s: Tensor) -> Tensor:
        """Y a_y + S a_s for coefficients given oldest first."""
        c, o = self.col, self.order
        by, bs = torch.zeros_like(a_y), torch.zeros_like(a_s)
        by[o], bs[o] = a_y, a_s
        return self.Y[:c].T @ by + self.S[:c].T @ bs

    def grams(self, free: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """Y_F'Y_F, S_F'Y_F, S_A'S_A, S_A'Y_A oldest first (F free, A active variables), from
        one product over the n variables."""
        c, o = self.col, self.order
        Y, S = self.Y[:c], self.S[:c]
        fm = free.to(S.dtype)
        masked = torch.empty((2 * c, S.shape[1]), dtype=S.dtype, device=S.device)
        torch.mul(Y, fm, out=masked[:c])
        torch.mul(S, fm, out=masked[c:])
        yf = masked @ Y.T  # [Y_F'Y; S_F'Y] = [Y_F'Y_F; S_F'Y_F]
        sa = torch.sub(S, masked[c:], out=masked[c:])  # S restricted to the active set
        return tuple(M[o][:, o] for M in (yf[:c], yf[c:], sa @ S.T, sa @ Y.T))

    def rows(self, idx: Tensor) -> Tensor:
        """Rows of W = [Y, theta S] for the variables idx (len(idx) x 2col), oldest first."""
        c, o = self.col, self.order
        return torch.cat([self.Y[:c, idx].T[:, o], self.theta * self.S[:c, idx].T[:, o]], dim=1)

    def update(self, s: Tensor, y: Tensor, rr: float, dr: float, stp: float, dtd: float) -> None:
        """scipy's matupd then formt (raises _SingularError where formt fails)."""
        m = self.m
        self.updatd = True
        self.iupdat += 1
        if self.iupdat <= m:
            self.col = self.iupdat
            self.itail = (self.head + self.iupdat - 1) % m
        else:
            self.itail = (self.itail + 1) % m
            self.head = (self.head + 1) % m
        self.S[self.itail] = s
        self.Y[self.itail] = y
        self.theta = rr / dr
        c = self.col
        if self.iupdat > m:
            self.ss[: m - 1, : m - 1] = self.ss[1:, 1:].clone()
            self.sy[: m - 1, : m - 1] = self.sy[1:, 1:].clone()
        sy_new, ss_new = self.products(s)  # s'y_j and s_j's, oldest first, the new pair last
        self.sy[c - 1, : c - 1] = sy_new[: c - 1]
        self.sy[: c - 1, c - 1] = 0.0
        self.ss[: c - 1, c - 1] = ss_new[: c - 1]
        self.ss[c - 1, : c - 1] = ss_new[: c - 1]
        self.ss[c - 1, c - 1] = dtd if stp == 1.0 else stp * stp * dtd
        self.sy[c - 1, c - 1] = dr
        self._middle()

    def _middle(self) -> None:
        """formt's Cholesky factor of T = theta S'S + L D^-1 L', and M = bmv(I)."""
        c, theta = self.col, self.theta
        sy, ss = self.sy[:c, :c], self.ss[:c, :c]
        diag = torch.diagonal(sy)
        low = torch.tril(sy, -1)
        T = theta * ss + (low / diag) @ low.T
        R, info = torch.linalg.cholesky_ex(T, upper=True)
        if int(info) != 0:
            raise _SingularError
        eye = torch.eye(2 * c, dtype=sy.dtype, device=sy.device)
        v1, v2 = eye[:c], eye[c:]
        p2 = v2 + (low / diag) @ v1
        p2 = torch.linalg.solve_triangular(R.T, p2, upper=False)
        p2 = torch.linalg.solve_triangular(R, p2, upper=True)
        p1 = -(v1 / diag.sqrt()[:, None]) / diag.sqrt()[:, None]
        p1 = p1 + (low.T @ p2) / diag[:, None]
        self.M = torch.cat([p1, p2], dim=0)  # column j is bmv(e_j): M is symmetric
        self.wn = None


# --------------------------------------------------------------------------- the steps


def projected_grad_norm(x: Tensor, g: Tensor, lo: Tensor, hi: Tensor) -> float:
    """projgr: infinity norm of the projected gradient (NaN propagates). For a box, scipy's
    g < 0 ? max(x - u, g) : min(x - l, g) is max(x - u, min(x - l, g))."""
    if not g.numel():
        return 0.0
    return float(torch.maximum(x - hi, torch.minimum(x - lo, g)).abs().max())


@dataclass
class _Cauchy:
    xcp: Tensor
    c: Tensor  # W'(xcp - x), 2col
    free: Tensor | None  # free variables at the GCP (scipy's iwhere <= 0); None: as before


FIRST_BREAKPOINTS = 256  # breakpoints selected (not sorted in full) before the first segment test


def cauchy(  # noqa: PLR0913, PLR0915
    x: Tensor, g: Tensor, lo: Tensor, hi: Tensor, fixed: Tensor, mem: Memory, sbgnrm: float
) -> _Cauchy:
    """Generalized Cauchy point, as scipy's `cauchy`. `fixed` marks l = u (scipy's iwhere 3);
    variables at a bound that the gradient pushes out stay (iwhere 1, 2), those with a zero
    gradient stay but are free (-3), the others move along -g up to their breakpoints."""
    col, theta = mem.col, mem.theta
    c = torch.zeros(2 * col, dtype=x.dtype, device=x.device)
    if sbgnrm <= 0.0:
        return _Cauchy(x.clone(), c, None)
    at_lo, at_hi = x <= lo, x >= hi  # x - l <= 0 and u - x <= 0, exactly
    held = (at_lo & (g >= 0)) | (~at_lo & at_hi & (g <= 0)) | fixed
    moving = ~held & (g != 0)
    free = ~held
    d = torch.where(moving, -g, 0.0)
    bidx = torch.nonzero(moving).flatten()
    if bidx.numel() == 0:
        return _Cauchy(x.clone(), c, free)
    # scipy's sums run one term at a time in index (then breakpoint) order; a cumulative sum
    # over the same terms (on the CPU a sequential loop) rounds exactly as it does.
    dm = d[bidx]
    f1 = float(torch.cumsum(-(dm * dm), 0)[-1])
    if col > 0:
        py, ps = mem.products(d)
        p = torch.cat([py, theta * ps]) if theta != 1.0 else torch.cat([py, ps])
    else:
        p = torch.zeros(0, dtype=x.dtype, device=x.device)
    f2 = -theta * f1
    f2_org = f2
    if col > 0:
        f2 -= float(torch.dot(mem.M @ p, p))
    dtm = -f1 / f2
    xb = x[bidx]
    tb = torch.where(dm < 0, (xb - lo[bidx]) / (-dm), (hi[bidx] - xb) / dm)
    nbreak = bidx.numel()
    # Often the minimizer lies before all but a few breakpoints: select the smallest ones,
    # and sort them all only when the search goes past those.
    tsorted, perm = torch.topk(tb, min(FIRST_BREAKPOINTS, nbreak), largest=False, sorted=True)
    order = bidx[perm]
    a, chunk, tprev, tsum = 0, 64, 0.0, 0.0
    fixed_upto = 0  # breakpoints order[:fixed_upto] are fixed at their bounds

    def running(start: float, terms: Tensor) -> Tensor:
        """start + terms[0, 0] + terms[0, 1] + ... one at a time: the value after each row."""
        seq = torch.cat([terms.new_tensor([start]), terms.reshape(-1)])
        return torch.cumsum(seq, 0)[terms.shape[1] :: terms.shape[1]]

    while True:
        if a >= nbreak:  # every breakpoint passed: all moving variables are at a bound
            dtm = 0.0
            break
        if a >= order.numel():  # past the selected ones: select 16 times more, or sort all
            k = 16 * order.numel()
            if k < nbreak:
                tsorted, perm = torch.topk(tb, k, largest=False, sorted=True)
            else:
                tsorted, perm = torch.sort(tb, stable=True)
            order = bidx[perm]
        b = min(order.numel(), a + chunk)
        chunk *= 4
        idx, tk = order[a:b], tsorted[a:b]
        prev = torch.cat([tk.new_tensor([tprev]), tk[:-1]])
        dt = tk - prev
        dibp = d[idx]
        zibp = torch.where(dibp > 0, hi[idx] - x[idx], lo[idx] - x[idx])
        dibp2 = dibp * dibp
        terms1 = [dibp2, -((theta * dibp) * zibp)]
        terms2 = [-(theta * dibp2)]
        if col > 0:
            wbp = mem.rows(idx)
            steps = torch.cat([p[None], -(dibp[:, None] * wbp)])
            P = torch.cumsum(steps, 0)[:-1]  # p before each breakpoint
            C = torch.cumsum(torch.cat([c[None], dt[:, None] * P]), 0)[1:]  # c after its dt
            V = wbp @ mem.M.T
            terms1.append(dibp * (C * V).sum(1))
            terms2 += [(dibp * 2.0) * (P * V).sum(1), -(dibp2 * (wbp * V).sum(1))]
        f2_after = running(f2, torch.stack(terms2, 1))
        f2_before = torch.cat([f2_after.new_tensor([f2]), f2_after[:-1]])
        f1_after = running(f1, torch.stack([dt * f2_before, *terms1], 1))
        f1_before = torch.cat([f1_after.new_tensor([f1]), f1_after[:-1]])
        tsums = running(tsum, dt[:, None])
        stop = torch.nonzero(-f1_before / f2_before < dt).flatten()
        clamp = torch.nonzero(f2_after < EPSMACH * f2_org).flatten()
        s = int(stop[0]) if stop.numel() else None
        q = int(clamp[0]) if clamp.numel() else None
        if s is not None and (q is None or s <= q):
            dtm = float(-f1_before[s] / f2_before[s])
            tsum = float(tsums[s - 1]) if s > 0 else tsum
            if col > 0:
                p = P[s]
                c = C[s - 1] if s > 0 else c
            fixed_upto = a + s
            break
        last = (b - a - 1) if q is None else q
        f1 = float(f1_after[last])
        f2 = float(f2_after[last]) if q is None else EPSMACH * f2_org
        tsum = float(tsums[last])
        tprev = float(tk[last])
        if col > 0:
            p = P[last] + steps[last + 1]
            c = C[last]
        fixed_upto = a + last + 1
        a = fixed_upto
        if q is not None:
            chunk = 256
    dtm = max(dtm, 0.0)
    tsum += dtm
    passed = order[:fixed_upto]
    up = d[passed] > 0
    d[passed] = 0.0
    xcp = x + tsum * d
    xcp[passed] = torch.where(up, hi[passed], lo[passed])
    free[passed] = False
    if col > 0:
        c = c + dtm * p
    return _Cauchy(xcp, c, free)


def form_k(mem: Memory, free: Tensor) -> Tensor:
    """formk: the upper-triangular 2col x 2col factor of K for the free set, formed directly
    from S and Y restricted to the free (Z) and active (A) variables."""
    col, theta = mem.col, mem.theta
    yfy, sfy, sas, say = mem.grams(free)
    upper = torch.ones((col, col), dtype=torch.bool, device=free.device).triu(1)
    b11 = yfy / theta + torch.diag(torch.diagonal(mem.sy[:col, :col]))
    b12 = torch.where(upper, -say.T, sfy.T)
    u11, info = torch.linalg.cholesky_ex(b11, upper=True)
    if int(info) != 0:
        raise _SingularError
    x12 = torch.linalg.solve_triangular(u11.T, b12, upper=False)
    u22, info = torch.linalg.cholesky_ex(theta * sas + x12.T @ x12, upper=True)
    if int(info) != 0:
        raise _SingularError
    top = torch.cat([u11, x12], dim=1)
    bottom = torch.cat([torch.zeros_like(u22), u22], dim=1)
    return torch.cat([top, bottom], dim=0)


def reduced_gradient(x: Tensor, g: Tensor, gcp: _Cauchy, mem: Memory) -> Tensor:
    """cmprlb: r = -Z'(B(xcp - x) + g) as a full-length vector (meaningful on the free set)."""
    a = mem.M @ gcp.c
    col = mem.col
    return -mem.theta * (gcp.xcp - x) - g + mem.combine(a[:col], mem.theta * a[col:])


def subspace_min(  # noqa: PLR0913
    x: Tensor, g: Tensor, z: Tensor, r: Tensor, free: Tensor, lo: Tensor, hi: Tensor, mem: Memory
) -> Tensor:
    """subsm (L-BFGS-B 3.0): Newton step on the free variables from the Cauchy point z, projected
    onto the box, or backtracked into it when the projection is not a descent direction."""
    col, theta = mem.col, mem.theta
    fm = free.to(r.dtype)
    d = r * fm
    wy, ws = mem.products(d)
    wv = torch.cat([wy, theta * ws])
    U = mem.wn
    wv = torch.linalg.solve_triangular(U.T, wv[:, None], upper=False)[:, 0]
    wv = torch.cat([-wv[:col], wv[col:]])
    wv = torch.linalg.solve_triangular(U, wv[:, None], upper=True)[:, 0]
    d = (d + mem.combine(wv[:col] / theta, wv[col:]) * fm) * (1.0 / theta)
    proj = torch.where(free, torch.minimum(hi, torch.maximum(lo, z + d)), z)
    if not bool((((proj == lo) | (proj == hi)) & free).any()):
        return proj
    if float(torch.dot(proj - x, g)) <= 0.0:
        return proj
    # backtrack along d from z to the first bound it meets
    fidx = torch.nonzero(free).flatten()
    dk, zk = d[fidx], z[fidx]
    room = torch.where(dk < 0, lo[fidx] - zk, hi[fidx] - zk)
    blocked = ((dk < 0) & (room >= 0)) | ((dk > 0) & (room <= 0))
    ratio = torch.where(dk != 0, room / torch.where(dk != 0, dk, 1.0), torch.inf)
    ratio = torch.where(blocked, 0.0, ratio)
    alpha = min(1.0, float(ratio.min())) if ratio.numel() else 1.0
    out = z.clone()
    if alpha < 1.0:
        ibd = int(torch.nonzero(ratio == alpha).flatten()[0])
        k = int(fidx[ibd])
        if float(d[k]) > 0:
            out[k] = hi[k]
        else:
            out[k] = lo[k]
        d = d.clone()
        d[k] = 0.0
    out[fidx] = out[fidx] + alpha * d[fidx]
    return out


# --------------------------------------------------------------------------- the driver


def minimize(  # noqa: C901, PLR0912, PLR0913, PLR0915
    fun: Objective,
    x0: Tensor,
    lower: Tensor,
    upper: Tensor,
    *,
    m: int = 10,
    maxiter: int = 15000,
    maxfun: int = 15000,
    ftol: float = 2.2204460492503131e-09,
    gtol: float = 1e-5,
    maxls: int = 20,
    callback: Callback | None = None,
) -> Result:
    """Minimize `fun` over the box lower <= x <= upper from x0, as scipy's L-BFGS-B would.

    `fun(x) -> (f, grad)` gets a float64 tensor on x0's device (do not modify it) and returns f
    (a number or 0-d tensor) and the gradient (any float dtype, same device). `callback(x, f)`
    runs after each iteration (x: the iterate, not to be modified); raising StopIteration there
    ends the run, as with scipy's `intermediate_result` callbacks. Options and defaults are
    scipy's (`ftol`, `gtol`, `maxiter`, `maxfun`, `maxls`, `m` = maxcor).
    """
    x0 = x0.detach().reshape(-1).to(torch.float64)
    lo = lower.detach().reshape(-1).to(device=x0.device, dtype=torch.float64)
    hi = upper.detach().reshape(-1).to(device=x0.device, dtype=torch.float64)
    if not (lo.shape == hi.shape == x0.shape):
        raise ValueError(
            f"x0, lower and upper need one shape, got {x0.shape}, {lo.shape}, {hi.shape}"
        )
    if not bool(torch.isfinite(lo).all() & torch.isfinite(hi).all()):
        raise ValueError("lbfgsb handles finite boxes only: give finite lower and upper bounds")
    if bool((lo > hi).any()):
        raise ValueError("a lower bound exceeds its upper bound: check the box")
    if m < 1 or maxls < 1:
        raise ValueError("m and maxls must be positive")
    tol = (ftol / EPSMACH) * EPSMACH
    n = x0.numel()
    x = torch.minimum(torch.maximum(x0, lo), hi)
    fixed = hi - lo <= 0
    mem = Memory(n, m, x)
    search = LineSearch()
    cache: dict = {"x": None}

    def evaluate(point: Tensor) -> tuple[float, Tensor]:
        # scipy's ScalarFunction: a request at the last point evaluated is answered from cache
        if cache["x"] is None or not torch.equal(point, cache["x"]):
            f, grad = fun(point)  # iterates are never modified in place: no copy needed
            cache.update(x=point, f=float(f), g=grad.detach().reshape(-1).double())
            cache["n"] = cache.get("n", 0) + 1
        return cache["f"], cache["g"]

    f, g = evaluate(x)
    nit = it = 0
    key = None
    sbgnrm = projected_grad_norm(x, g, lo, hi)
    if sbgnrm <= gtol:
        key = "grad"
    free_prev: Tensor | None = None
    while key is None:
        # ---- search direction: Cauchy point, then subspace minimization
        try:
            gcp = cauchy(x, g, lo, hi, fixed, mem, sbgnrm)
            free = gcp.free if gcp.free is not None else free_prev
            free = ~fixed if free is None else free
            changed = it > 0 and free_prev is not None and not torch.equal(free, free_prev)
            wrk = changed or mem.updatd
            free_prev = free
            z = gcp.xcp
            if bool(free.any()) and mem.col > 0:
                if wrk or mem.wn is None:
                    mem.wn = form_k(mem, free)
                r = reduced_gradient(x, g, gcp, mem)
                z = subspace_min(x, g, gcp.xcp, r, free, lo, hi, mem)
        except _SingularError:
            mem.reset()
            continue
        d = z - x
        # ---- line search (lnsrlb + dcsrch)
        dnorm = float(torch.linalg.vector_norm(d))
        dtd = dnorm**2
        if it == 0:
            stpmx = 1.0
        else:
            # the largest step in the box: min over moving i of (bound_i - x_i) / d_i, and 0
            # when a variable at its bound would leave it (there the ratio is <= 0)
            ratio = (torch.where(d < 0, lo, hi) - x) / d
            ratio.masked_fill_(d == 0, math.inf)
            stpmx = max(0.0, min(1e10, float(ratio.min()))) if n else 1e10
        stp = 1.0
        x_old, g_old, fold = x, g, f
        ifun = 0
        search.task = "START"
        failed = False
        while True:
            gd = float(torch.dot(g, d))
            if ifun == 0:
                gdold = gd
                if gd >= 0.0:  # not a descent direction
                    failed = True
                    break
            stp = search.step(f, gd, stp, 0.0, stpmx)
            if search.task in ("CONV", "WARN"):
                break
            ifun += 1
            if ifun - 1 >= maxls:
                failed = True
                break
            if stp == 1.0:
                x = z  # never modified in place
            else:
                x = torch.minimum(torch.maximum(stp * d + x_old, lo), hi)
            f, g = evaluate(x)
        if failed:
            x, g, f = x_old, g_old, fold
            if mem.col == 0:
                key = "abnormal"
                break
            mem.reset()
            continue
        # ---- new iterate
        it += 1
        nit += 1
        sbgnrm = projected_grad_norm(x, g, lo, hi)
        if callback is not None:
            try:
                callback(x, f)
            except StopIteration:
                key = "callback"
        if nit >= maxiter:
            key = "maxiter"
        elif cache["n"] > maxfun:
            key = "maxfun"
        if key is not None:
            break
        if sbgnrm <= gtol:
            key = "grad"
            break
        if fold - f <= tol * max(abs(fold), abs(f), 1.0):
            key = "f"
            break
        # ---- limited-memory update
        y = g - g_old
        rr = float(torch.linalg.vector_norm(y)) ** 2
        if stp == 1.0:
            dr, ddum = gd - gdold, -gdold
        else:
            dr, ddum = (gd - gdold) * stp, -gdold * stp
            d = d * stp
        if dr <= EPSMACH * ddum:
            mem.updatd = False
            continue
        try:
            mem.update(d, y, rr, dr, stp, dtd)
        except _SingularError:
            mem.reset()
    if key in ("grad", "f"):
        status = 0
    elif cache["n"] > maxfun or nit >= maxiter:
        status = 1
    else:
        status = 2
    return Result(x, f, g, nit, cache["n"], status, MESSAGES[key])
