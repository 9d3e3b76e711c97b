package backup

import "syscall"

func statAtime(st *syscall.Stat_t) syscall.Timespec { return st.Atimespec }
func statCtime(st *syscall.Stat_t) syscall.Timespec { return st.Ctimespec }
