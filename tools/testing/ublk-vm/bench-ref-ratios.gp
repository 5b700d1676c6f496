# SPDX-License-Identifier: GPL-2.0
#
# Bar chart of the "ours vs Linux 6.1's module" IOPS ratios of make bench
# (part ref; bench-report.py calls it). Parameters (gnuplot -e): dat, out,
# n (workloads), subtitle.
# dat columns: idx workload, then med min max of six series (kublk null,
#              ublksrv null, kublk loop, ublksrv loop: ours / 6.1's; null,
#              loop: kublk on ours / ublksrv on 6.1's), then the targets of
#              the same-server and of the cross series (NaN where none)

set terminal pngcairo size 1500,800 noenhanced font 'DejaVu Sans,10'
set output out
set title "ublk: our driver against Linux 6.1's module (IOPS ratio)\n" . subtitle
set ylabel 'IOPS ratio'
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

# six bars per workload, 0.13 wide, centred on the workload's index
bw = 0.13
x(i) = column(1) + (i - 2.5) * bw
med(i) = column(3 + 3 * i)
lo(i) = column(4 + 3 * i)
hi(i) = column(5 + 3 * i)

plot dat using (x(0)):(med(0)):(bw * 0.95) with boxes lc rgb '#4e79a7' title "kublk null: ours / 6.1's", \
     '' using (x(1)):(med(1)):(bw * 0.95) with boxes lc rgb '#a0cbe8' title "ublksrv null: ours / 6.1's", \
     '' using (x(2)):(med(2)):(bw * 0.95) with boxes lc rgb '#f28e2b' title "kublk loop: ours / 6.1's", \
     '' using (x(3)):(med(3)):(bw * 0.95) with boxes lc rgb '#ffbe7d' title "ublksrv loop: ours / 6.1's", \
     '' using (x(4)):(med(4)):(bw * 0.95) with boxes lc rgb '#59a14f' title "null: kublk on ours / ublksrv on 6.1's", \
     '' using (x(5)):(med(5)):(bw * 0.95) with boxes lc rgb '#8cd17d' title "loop: kublk on ours / ublksrv on 6.1's", \
     for [i=0:5] '' using (x(i)):(lo(i)):(0):(hi(i) - lo(i)) with vectors nohead lc rgb 'black' lw 1.2 notitle, \
     '' using (x(0) - bw / 2):21:(4 * bw):(0) with vectors nohead lw 4 lc rgb '#d62728' title 'target', \
     '' using (x(4) - bw / 2):22:(2 * bw):(0) with vectors nohead lw 4 lc rgb '#d62728' notitle, \
     for [i=0:5] '' using (x(i)):(hi(i)):(sprintf('%.2f', med(i))) with labels offset 0, 0.7 font ',7' rotate by 90 left notitle, \
     '' using 1:(NaN):xtic(2) notitle
