# SPDX-License-Identifier: GPL-2.0
#
# IOPS timeline around a ublk server crash and recovery ("make bench",
# called by bench-report.py). Parameters (gnuplot -e): dat (columns: time
# in s relative to the kill, IOPS, longest latency in ms of the I/Os
# completed in the bin), out, tq and tlive (s after the kill), zlo and zhi
# (zoom range, s), subtitle.

set terminal pngcairo size 1200,860 noenhanced font 'DejaVu Sans,10'
set output out
set multiplot layout 2, 1 title "I/O completions around a ublk server crash (kill -9) and user recovery\n" . subtitle
set grid
set key top right box opaque
set ylabel 'IOPS (completions per 10 ms)'
set yrange [0:*]
set offsets 0, 0, graph 0.18, 0

lk = 'kill -9'
lq = sprintf('QUIESCED +%.0f ms', tq * 1000)
ll = sprintf('LIVE +%.0f ms', tlive * 1000)

# whole run, in seconds
set title 'whole run'
set xlabel 'time relative to kill -9 (s)'
set arrow 1 from 0, graph 0 to 0, graph 1 nohead lw 2 dt 2 lc rgb '#d62728' front
set arrow 2 from tq, graph 0 to tq, graph 1 nohead lw 2 dt 3 lc rgb '#ff7f0e' front
set arrow 3 from tlive, graph 0 to tlive, graph 1 nohead lw 2 dt 2 lc rgb '#2ca02c' front
set label 1 lk at 0, graph 0.96 right offset -0.5, 0 tc rgb '#d62728' front
set label 2 lq at tq, graph 0.88 left offset 0.5, 0 tc rgb '#ff7f0e' front
set label 3 ll at tlive, graph 0.80 left offset 0.5, 0 tc rgb '#2ca02c' front
plot dat using 1:2 with histeps lw 1.2 lc rgb '#4e79a7' title 'IOPS, 10 ms bins'

# zoom, in milliseconds
set title 'zoom on the crash'
set xlabel 'time relative to kill -9 (ms)'
set y2label 'longest latency of the I/Os completed in the bin (ms, log)'
set logscale y2
set y2tics
set ytics nomirror
set key outside below horizontal box opaque
set bmargin 5.5
set xrange [zlo * 1000:zhi * 1000]
set arrow 1 from 0, graph 0 to 0, graph 1 nohead lw 2 dt 2 lc rgb '#d62728' front
set arrow 2 from tq * 1000, graph 0 to tq * 1000, graph 1 nohead lw 2 dt 3 lc rgb '#ff7f0e' front
set arrow 3 from tlive * 1000, graph 0 to tlive * 1000, graph 1 nohead lw 2 dt 2 lc rgb '#2ca02c' front
set label 1 lk at 0, graph 0.96 right offset -0.5, 0
set label 2 lq at tq * 1000, graph 0.88 left offset 0.5, 0
set label 3 ll at tlive * 1000, graph 0.80 left offset 0.5, 0
plot dat using ($1 * 1000):2 with histeps lw 1.5 lc rgb '#4e79a7' title 'IOPS, 10 ms bins', \
     '' using ($1 * 1000):3 axes x1y2 with points pt 7 ps 0.6 lc rgb '#9467bd' title 'longest I/O latency in the bin (right axis)'
unset multiplot
