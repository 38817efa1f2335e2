### ერთჯერადი კოდები ელფოსტითა და SMS-ით, ქართულად (თავაზიანი „თქვენ“ ფორმით).
### Variables: $tenant (the sender's name), $code, $validity (a validity-* text), $count.
### Georgian numerals take the singular noun ("10 წუთი"), so validity needs no plural forms;
### the sentences use it in the nominative ("ვადა: 10 წუთი"). Georgian SMS are UCS-2: one
### segment is 70 characters, so the SMS texts are kept short.

validity-seconds = { $count } წამი
validity-minutes = { $count } წუთი

email-sign-in-subject = { $tenant } — თქვენი შესვლის კოდი
email-sign-in-intro = თქვენი კოდი { $tenant }-ში შესასვლელად:
email-sign-in-outro = კოდის მოქმედების ვადაა { $validity }, მისი გამოყენება მხოლოდ ერთხელ შეიძლება. არავის გაუზიაროთ ეს კოდი: { $tenant } მას არასდროს მოგთხოვთ. თუ { $tenant }-ში შესვლას არ ცდილობდით, შესაძლოა, ვინმემ თქვენი პაროლი იცოდეს: შეცვალეთ იგი.

email-verify-subject = { $tenant } — თქვენი დადასტურების კოდი
email-verify-intro = თქვენი { $tenant }-ის დადასტურების კოდი:
email-verify-outro = შეიყვანეთ იგი ამ ელფოსტის მისამართის დასადასტურებლად. კოდის მოქმედების ვადაა { $validity }, მისი გამოყენება მხოლოდ ერთხელ შეიძლება. თუ ეს მისამართი { $tenant }-ის ანგარიშს არ დაუმატეთ, უბრალოდ უგულებელყავით ეს წერილი.

sms-sign-in = { $code } — { $tenant }-ში შესვლის კოდი. ვადა: { $validity }. არავის გაუზიაროთ.
sms-sign-in-short = { $code } — { $tenant }-ში შესვლის კოდი. ვადა: { $validity }.
sms-sign-in-minimal = { $code } — თქვენი შესვლის კოდი. ვადა: { $validity }.
sms-sign-in-bare = { $code } — შესვლის კოდი

sms-verify = { $code } — { $tenant }-ის ნომრის დადასტურების კოდი. ვადა: { $validity }. არავის გაუზიაროთ.
sms-verify-short = { $code } — { $tenant }-ის დადასტურების კოდი. ვადა: { $validity }.
sms-verify-minimal = { $code } — ნომრის დადასტურების კოდი. ვადა: { $validity }.
sms-verify-bare = { $code } — დადასტურების კოდი
