# SPDX-License-Identifier: GPL-2.0
#
# Bar chart of the ublk/kernel IOPS ratios of "make bench" (bench-report.py
# calls it). Parameters (gnuplot -e): dat, out, n (workloads), subtitle.
# dat columns: idx workload nullmed nullmin nullmax loopmed loopmin loopmax
#              nulltarget looptarget (NaN where there is none)

set terminal pngcairo size 1400,760 noenhanced font 'DejaVu Sans,10'
set output out
set title "ublk throughput relative to the kernel driver on the same workload (IOPS ratio)\n" . subtitle
set ylabel 'IOPS ratio  (ublk / kernel driver)'
set xlabel "workload: 4k random or 128k sequential; qdN = iodepth; qd128b = iodepth 128 batched (submit 16, complete min 16); Nq = queues = fio jobs"
set xrange [-0.6:n - 0.4]
set yrange [0:*]
set offsets 0, 0, graph 0.08, 0
set grid ytics
set xtics rotate by -30 scale 0 font ',9' nomirror
set key outside top center horizontal
set style fill solid 0.85 border -1
set bmargin 9
set arrow 1 from -0.6, 1 to n - 0.4, 1 nohead dt 2 lw 1.5 lc rgb 'gray30' front
set label 1 'equal' at n - 0.45, 1 right offset 0, 0.6 tc rgb 'gray30' front

plot dat using ($1 - 0.2):3:(0.38) with boxes lc rgb '#4e79a7' title 'ublk null / null_blk', \
     '' using ($1 + 0.2):6:(0.38) with boxes lc rgb '#f28e2b' title 'ublk loop / loop (tmpfs file)', \
     '' using ($1 - 0.2):4:(0):($5 - $4) with vectors nohead lc rgb 'black' lw 1.2 notitle, \
     '' using ($1 + 0.2):7:(0):($8 - $7) with vectors nohead lc rgb 'black' lw 1.2 notitle, \
     '' using ($1 - 0.39):9:(0.38):(0) with vectors nohead lw 4 lc rgb '#d62728' title 'target', \
     '' using ($1 + 0.01):10:(0.38):(0) with vectors nohead lw 4 lc rgb '#d62728' notitle, \
     '' using ($1 - 0.2):5:(sprintf('%.2f', $3)) with labels offset 0, 0.7 font ',8' notitle, \
     '' using ($1 + 0.2):8:(sprintf('%.2f', $6)) with labels offset 0, 0.7 font ',8' notitle, \
     '' using 1:(NaN):xtic(2) notitle
